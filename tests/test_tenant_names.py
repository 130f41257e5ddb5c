"""Tenant ids and names: no trailing newline in an id, no control characters in a name.

Pure tests of leadgen_core.db.pool.check_tenant_id and leadgen_core.tenants.check_tenant_name,
and `leadgen tenants add` through click's runner against the session Postgres (nothing simulated).
"""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.db.pool import TENANT_ID_RE, check_tenant_id
from leadgen_core.errors import ConfigError, TenantIsolationError
from leadgen_core.tenants import check_tenant_name, slugify
from leadgen_dagster.cli import main
from leadgen_dagster.partitions import PartitionKeyError, parse_tenant_date


@pytest.mark.parametrize("bad", ["alpha\n", "alpha\r\n", "\nalpha", "al\npha", "alpha ", "Alpha", "", "-alpha"])
def test_check_tenant_id_refuses_newlines_and_other_shapes(bad: str) -> None:
    with pytest.raises(TenantIsolationError):
        check_tenant_id(bad)
    assert TENANT_ID_RE.match(bad) is None


def test_check_tenant_id_accepts_a_slug() -> None:
    assert check_tenant_id("demo-alpha") == "demo-alpha"


def test_partition_key_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(PartitionKeyError):
        parse_tenant_date("2026-03-02|alpha\n")


@pytest.mark.parametrize("bad", ["Acme\nCorp", "Acme\tCorp", "Acme\n", "\tAcme", "Acme\x00", "Acme\x1b[2J", "A\u2028B"])
def test_tenant_names_with_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="control"):
        check_tenant_name(bad)


def test_ordinary_names_pass_trimmed() -> None:
    assert check_tenant_name("  Acme Pte. Ltd. (Asia)  ") == "Acme Pte. Ltd. (Asia)"
    assert slugify(check_tenant_name("Café Ünïcode")) == "cafe-unicode"  # accents dropped, not the letters
    assert slugify("Ｆｕｌｌｗｉｄｔｈ Co") == "fullwidth-co"
    assert slugify("Straße Müller") == "strasse-muller"  # casefolded before the accents go


def test_a_name_without_latin_letters_asks_for_an_id() -> None:
    with pytest.raises(ConfigError, match="--id"):
        slugify("新加坡贸易")


def test_cli_refuses_a_name_with_a_newline_and_creates_nothing(clean_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    out = CliRunner().invoke(main, ["tenants", "add", "Acme\nevil-tenant  active  odoo connected"])
    assert out.exit_code == 2
    assert len(out.output.strip().splitlines()) == 1
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM tenants").fetchone() == (0,)


def test_cli_takes_the_id_a_user_chooses_for_a_name_without_latin_letters(clean_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    refused = CliRunner().invoke(main, ["tenants", "add", "新加坡贸易"])
    assert refused.exit_code == 2
    assert "--id" in refused.output
    made = CliRunner().invoke(main, ["tenants", "add", "新加坡贸易", "--id", "sg-trading"])
    assert made.exit_code == 0, made.output
    assert "created tenant sg-trading (新加坡贸易)" in made.output
    for bad in ("SG Trading", "sg_trading", "-sg", "x" * 64, "sg\n"):
        out = CliRunner().invoke(main, ["tenants", "add", "Other", "--id", bad])
        assert out.exit_code == 2, (bad, out.output)
        assert "tenant id" in out.output and len(out.output.strip().splitlines()) == 1
    again = CliRunner().invoke(main, ["tenants", "add", "Another", "--id", "sg-trading"])
    assert again.exit_code == 2 and "the id 'sg-trading' is taken" in again.output
    # an id that is another tenant's name, or a name that is another tenant's id: `resolve` takes
    # either, so both would make "leadgen ... --tenant X" ambiguous
    assert CliRunner().invoke(main, ["tenants", "add", "Bar"]).exit_code == 0  # id bar
    clash = CliRunner().invoke(main, ["tenants", "add", "Other", "--id", "新加坡贸易"])
    assert clash.exit_code == 2 and "tenant id" in clash.output  # not even a valid id
    named_like_an_id = CliRunner().invoke(main, ["tenants", "add", "SG-Trading", "--id", "x1"])
    assert named_like_an_id.exit_code == 2 and "already exists (id sg-trading)" in named_like_an_id.output
    id_like_a_name = CliRunner().invoke(main, ["tenants", "add", "Zed", "--id", "bar"])
    assert id_like_a_name.exit_code == 2 and "is taken" in id_like_a_name.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT tenant_id, name FROM tenants ORDER BY 1").fetchall() == [
            ("bar", "Bar"), ("sg-trading", "新加坡贸易")
        ]  # fmt: skip
