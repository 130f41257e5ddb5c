"""Migrations against a real Postgres: each test gets its own empty database. Nothing simulated."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import psycopg
import pytest

from leadgen_core.db.migrate import SQL_DIR, discover, migrate, status
from leadgen_core.errors import MigrationError
from tests.conftest import APP_ROLE, create_database, drop_database


@pytest.fixture
def empty_db(pg_server: str):
    name, dsn = create_database(pg_server, prefix="leadgen_mig")
    yield dsn
    drop_database(pg_server, name)


def table_names(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_applies_from_empty_then_rerun_is_noop(empty_db: str) -> None:
    applied = migrate(empty_db, app_role=APP_ROLE)
    assert applied == [m.filename for m in discover()]
    assert {"tenants", "companies", "lead_scores", "vendor_usage", "odoo_sync_log"} <= table_names(empty_db)
    assert migrate(empty_db, app_role=APP_ROLE) == []
    assert {s.state for s in status(empty_db)} == {"applied"}
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM ssic_ref WHERE level = 'subclass'").fetchone() == (988,)
        role = conn.execute("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s", (APP_ROLE,))
        assert role.fetchone() == (False, False, True)


def test_altered_applied_file_is_refused(empty_db: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(empty_db, app_role=APP_ROLE, sql_dir=sql_dir)
    first = sorted(sql_dir.glob("0*.sql"))[0]
    first.write_text(first.read_text() + "\n-- sneaky edit\n")
    with pytest.raises(MigrationError, match="has changed"):
        migrate(empty_db, app_role=APP_ROLE, sql_dir=sql_dir)
    assert any(s.state == "changed" for s in status(empty_db, sql_dir=sql_dir))


def test_new_file_is_applied_and_failed_file_rolls_back(empty_db: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    migrate(empty_db, app_role=APP_ROLE, sql_dir=sql_dir)
    (sql_dir / "900_broken.sql").write_text("CREATE TABLE half_done (x int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match="900_broken.sql failed"):
        migrate(empty_db, app_role=APP_ROLE, sql_dir=sql_dir)
    assert "half_done" not in table_names(empty_db)  # its own transaction rolled back
    assert [s.state for s in status(empty_db, sql_dir=sql_dir)][-1] == "pending"


def test_two_concurrent_migrators_end_in_the_same_state(empty_db: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            results.append(migrate(empty_db, app_role=APP_ROLE))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    all_files = [m.filename for m in discover()]
    assert sorted(results, key=len) == [[], all_files]  # one applied everything, the other nothing
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(all_files),)
