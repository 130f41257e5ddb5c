"""An unmigrated database is named as such, once, centrally: not Postgres's "does not exist".

Real: a fresh, empty database created on the test server for this module (dropped after), the
CLI through click's runner, the pool (`Database`), the migrator. Nothing simulated.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.db.pool import Database
from leadgen_core.db.schema_check import NOT_MIGRATED
from leadgen_core.errors import DatabaseError, MigrationError
from leadgen_dagster.cli import main
from tests.conftest import create_database, drop_database


@pytest.fixture
def empty_db(pg_server: str) -> Iterator[str]:
    name, dsn = create_database(pg_server, prefix="leadgen_unmigrated")
    try:
        yield dsn
    finally:
        drop_database(pg_server, name)


def cli(dsn: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("LEADGEN_DATABASE_URL", dsn)
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output.strip()


@pytest.mark.parametrize(
    "args",
    [("tenants", "list"), ("tenants", "add", "Acme"), ("budget", "show", "--tenant", "acme")],
    ids=["tenants-list", "tenants-add", "budget-show"],
)
def test_cli_commands_on_an_unmigrated_database_say_so(
    empty_db: str, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    assert cli(empty_db, monkeypatch, *args) == (2, f"error: {NOT_MIGRATED}")


def test_the_pool_names_an_unmigrated_database_and_not_a_real_error_on_a_migrated_one(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Database(empty_db, min_size=1, max_size=2) as db:
        with pytest.raises(MigrationError, match="not migrated: run `leadgen db migrate`"):
            with db.global_transaction() as conn:
                conn.execute("SELECT * FROM leadgen_tenant_directory()")
    assert cli(empty_db, monkeypatch, "db", "migrate")[0] == 0
    with Database(empty_db, min_size=1, max_size=2) as db:
        with pytest.raises(DatabaseError) as caught:  # a real bug on a migrated database stays itself
            with db.global_transaction() as conn:
                conn.execute("SELECT * FROM no_such_table")
        assert not isinstance(caught.value, MigrationError) and "does not exist" in str(caught.value)
        with db.global_transaction() as conn:  # and the schema works
            conn.execute("SELECT * FROM leadgen_tenant_directory()").fetchall()


def test_a_database_behind_the_code_is_not_migrated_either(empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli(empty_db, monkeypatch, "db", "migrate")[0] == 0
    with psycopg.connect(empty_db, autocommit=True) as conn:  # as if 003 had never been applied
        conn.execute("DROP FUNCTION leadgen_tenant_directory()")
        conn.execute("DELETE FROM schema_migrations WHERE version = '003'")
    assert cli(empty_db, monkeypatch, "tenants", "list") == (2, f"error: {NOT_MIGRATED}")
