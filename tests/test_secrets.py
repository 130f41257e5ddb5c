"""The secret-reference rule (which environment variables a tenant's secret may be read from) and
the Odoo URL rule (no userinfo, whitespace or control characters; userinfo never printed).

Real: the rule in leadgen_core.secrets, the admin CLI (`leadgen odoo connect`) against the session
Postgres as the owner, and the Odoo sync stage as the application role reading a reference that
was written into the database by hand. Simulated: Odoo (OdooSim on loopback), which must see no
request at all when the reference is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.db.pool import Database
from leadgen_core.errors import ConfigError
from leadgen_core.leads.sync_stage import run_sync_stage
from leadgen_core.redaction import redact as dsn_redact
from leadgen_core.redaction import redact as odoo_redact
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.secrets import check_secret_env, check_secret_ref, resolve_secret_ref
from leadgen_core.settings import Settings
from leadgen_core.urls import check_odoo_url, redact_url
from leadgen_dagster.cli import main
from tests.conftest import DbHandle
from tests.test_odoo_sync import SECRET, scored_night, sync_ctx

PREFIXES = ("ODOO_", "TENANT_SECRET_")
OWNER_DSN_VALUE = "postgresql://postgres:owner-pw-93f1@127.0.0.1:5432/leadgen"

# Names the product (or its platform) reads for itself: refused even under a matching prefix.
REFUSED = [
    "LEADGEN_DATABASE_URL", "LEADGEN_APP_DATABASE_URL", "LEADGEN_APP_PASSWORD", "LEADGEN_ALERT_WEBHOOK_URL",
    "LEADGEN_DAGSTER_PG_URL", "DAGSTER_HOME", "PATH", "HOME", "PGPASSWORD", "OPENAI_API_KEY", "TAVILY_API_KEY",
    "LUSHA_API_KEY", "ZEROBOUNCE_API_KEY", "ODOO_SANDBOX_URL", "DATABASE_URL", "AWS_SECRET_ACCESS_KEY",
]  # fmt: skip


@pytest.fixture(scope="module")
def sim() -> Iterator[OdooSim]:
    with OdooSim(db="sandbox", users={"admin": SECRET}) as odoo:
        yield odoo


@pytest.mark.parametrize("name", REFUSED)
def test_names_the_product_reads_are_refused(name: str) -> None:
    # Even a deployment that widens the prefixes to everything it could cannot reach these.
    wide = (*PREFIXES, "LEADGEN_", "DAGSTER_", "PATH_", "OPENAI_", "TAVILY_", "LUSHA_", "ZEROBOUNCE_", "AWS_")
    with pytest.raises(ConfigError, match="reads for itself|must start with|upper-case"):
        check_secret_env(name, prefixes=wide)
    with pytest.raises(ConfigError):
        check_secret_ref(f"env:{name}", prefixes=PREFIXES)


@pytest.mark.parametrize(
    "name",
    ["ACME_ODOO_KEY", "ODOO_", "TENANT_SECRET_", "odoo_acme", "ODOO_ACME KEY", "ODOO_ACME\n", "", "SECRET"],
)
def test_names_outside_the_prefixes_are_refused(name: str) -> None:
    with pytest.raises(ConfigError):
        check_secret_env(name, prefixes=PREFIXES)


@pytest.mark.parametrize("name", ["ODOO_SANDBOX_KEY", "ODOO_ACME_KEY", "TENANT_SECRET_ACME_LUSHA"])
def test_tenant_names_are_accepted(name: str) -> None:
    assert check_secret_env(name, prefixes=PREFIXES) == name
    assert check_secret_ref(f"env:{name}", prefixes=PREFIXES) == name


@pytest.mark.parametrize("ref", ["ODOO_ACME_KEY", "file:ODOO_ACME_KEY", "env:", "vault:x/y"])
def test_references_must_be_env_variable(ref: str) -> None:
    with pytest.raises(ConfigError, match="env:VARIABLE"):
        check_secret_ref(ref, prefixes=PREFIXES)


def test_resolve_never_shows_the_value() -> None:
    environ = {"LEADGEN_DATABASE_URL": OWNER_DSN_VALUE, "ODOO_ACME_KEY": "k-1234"}
    with pytest.raises(ConfigError) as info:
        resolve_secret_ref("env:LEADGEN_DATABASE_URL", environ, owner="the Odoo secret of tenant acme",
                           prefixes=("ODOO_", "LEADGEN_"))  # fmt: skip
    assert "owner-pw-93f1" not in str(info.value) and "LEADGEN_DATABASE_URL" in str(info.value)
    assert resolve_secret_ref("env:ODOO_ACME_KEY", environ, owner="x", prefixes=PREFIXES) == "k-1234"
    with pytest.raises(ConfigError, match="ODOO_OTHER_KEY"):
        resolve_secret_ref("env:ODOO_OTHER_KEY", environ, owner="x", prefixes=PREFIXES)


@pytest.mark.parametrize(
    ("value", "ok"), [("ODOO_,TENANT_SECRET_", True), ("ODOO_, ACME_", True), ("", True), ("A", False), ("o_", False)]
)
def test_prefix_setting_is_validated(value: str, ok: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADGEN_SECRET_PREFIXES", value)
    if ok:
        assert Settings().secret_prefixes == [p.strip() for p in value.split(",") if p.strip()]
    else:
        with pytest.raises(ValueError, match="LEADGEN_SECRET_PREFIXES"):
            Settings()


@pytest.mark.parametrize("name", ["LEADGEN_DATABASE_URL", "PATH", "LEADGEN_APP_PASSWORD", "ACME_ODOO_KEY"])
def test_odoo_connect_refuses_the_reference(name: str, clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "add", "Acme"], catch_exceptions=False).exit_code == 0
    args = ["odoo", "connect", "--tenant", "acme", "--url", "https://acme.example", "--db", "acme",
            "--protocol", "json2", "--login", "bot", "--secret-env", name]  # fmt: skip
    r = runner.invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 2 and "--secret-env" in r.output and name in r.output, r.output
    assert "Traceback" not in r.output and clean_db.owner_dsn not in r.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM odoo_connections").fetchone() == (0,)


def test_the_night_refuses_a_reference_written_by_hand(app_db: Database, owner_conn, sim: OdooSim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "json2")
    owner_conn.execute("UPDATE odoo_connections SET secret_ref = 'env:LEADGEN_DATABASE_URL'")
    environ = {"LEADGEN_DATABASE_URL": OWNER_DSN_VALUE, "ODOO_TEST_SECRET": SECRET}
    with pytest.raises(ConfigError, match="LEADGEN_DATABASE_URL") as info:
        run_sync_stage(sync_ctx(app_db, environ=environ))
    assert "owner-pw-93f1" not in str(info.value)
    assert sim.log == [] and sim.write_count == 0  # not one request reached the tenant's URL


# --- Odoo URLs ------------------------------------------------------------------------------

USERINFO_URLS = [
    "https://admin:hunter2-pw@acme.odoo.com",
    "http://hunter2-pw@acme.odoo.com/",
    "https://u:hunter2-pw@h:8069",
]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        *[(u, "must not carry a user or password") for u in USERINFO_URLS],
        ("https://acme.odoo.com\n", "whitespace or control characters"),
        ("https://acme.odoo.com/x\r\nX-Injected: 1", "whitespace or control characters"),
        ("https://acme .odoo.com", "whitespace or control characters"),
        ("https://acme.odoo.com\t", "whitespace or control characters"),
        ("https://acme.odoo.com\x00", "whitespace or control characters"),
        ("https://acme.odoo.com\u200b", "whitespace or control characters"),
        ("ftp://acme.odoo.com", "must be an http(s) URL"),
        ("https://", "must be an http(s) URL"),
        ("https://acme.odoo.com:99999", "not a valid URL"),
        ("https://acme.odoo.com/?db=x", "without a query or fragment"),
    ],
)
def test_bad_odoo_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        check_odoo_url(url)
    assert "hunter2-pw" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [("https://acme.odoo.com/", "https://acme.odoo.com"), ("http://127.0.0.1:8069", "http://127.0.0.1:8069"),
     ("https://erp.acme.example/odoo", "https://erp.acme.example/odoo")],
)  # fmt: skip
def test_good_odoo_urls_pass(url: str, expected: str) -> None:
    assert check_odoo_url(url) == expected


def test_redaction_removes_the_whole_userinfo() -> None:
    text = "cannot reach https://admin:hunter2-pw@acme.odoo.com/json and postgresql://bob:pw9@db/x"
    shown = redact_url(text)
    assert "hunter2-pw" not in shown and "admin" not in shown and "pw9" not in shown and "bob" not in shown
    assert "https://***@acme.odoo.com/json" in shown
    assert "hunter2-pw" not in dsn_redact(text)  # the DSN and Odoo redactions delegate to the same rule
    assert "hunter2-pw" not in odoo_redact(text, ()) and "hunter2-pw" not in odoo_redact(text, ("pw9",))


@pytest.mark.parametrize("url", USERINFO_URLS)
def test_odoo_connect_refuses_userinfo_without_printing_it(url: str, cli_env: CliRunner, clean_db: DbHandle) -> None:
    args = ["odoo", "connect", "--tenant", "acme", "--url", url, "--db", "acme", "--protocol", "json2",
            "--login", "bot", "--secret-env", "ODOO_ACME_KEY"]  # fmt: skip
    r = cli_env.invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 2 and "must not carry a user or password" in r.output, r.output
    assert "hunter2-pw" not in r.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM odoo_connections").fetchone() == (0,)


def test_the_night_refuses_a_url_with_userinfo_written_by_hand(app_db: Database, owner_conn, sim: OdooSim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "jsonrpc")
    hostile = sim.base_url.replace("://", "://admin:hunter2-pw@")
    owner_conn.execute("UPDATE odoo_connections SET base_url = %s", (hostile,))
    with pytest.raises(ConfigError, match="must not carry a user or password") as info:
        run_sync_stage(sync_ctx(app_db))
    assert "hunter2-pw" not in str(info.value) and "admin" not in str(info.value)
    assert sim.log == [] and sim.write_count == 0


@pytest.fixture
def cli_env(clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "add", "Acme"], catch_exceptions=False).exit_code == 0
    return runner


def test_one_redact_for_secrets_dsns_and_userinfo() -> None:
    """Issue 11 §8: one `redact` (leadgen_core.redaction) covers keys, DSN passwords and URL userinfo,
    and no other module of leadgen_core or leadgen_dagster defines its own (Transport.redact calls it)."""
    from pathlib import Path

    from leadgen_core.redaction import redact

    text = "key sk-live-9876 dsn host=x password=hunter2 url https://u:pw9@odoo.example"
    shown = redact(text, ("sk-live-9876",))
    assert "sk-live-9876" not in shown and "hunter2" not in shown and "pw9" not in shown
    root = Path(__file__).resolve().parents[1]
    owners = [
        str(p.relative_to(root))
        for pkg in ("leadgen_core", "leadgen_dagster")
        for p in (root / pkg).rglob("*.py")
        if "\ndef redact(" in p.read_text(encoding="utf-8")
    ]
    assert owners == ["leadgen_core/redaction.py"], owners
