"""Both database paths.

Real: an embedded Postgres started from the pgserver wheel in a temporary folder (always, even
when the session uses a real server), and the real server named by LEADGEN_TEST_DATABASE_URL
when it is set. The same migrator and app-role checks run on each.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from leadgen_core.db.dsn import as_role, sqlalchemy_url
from leadgen_core.db.embedded import embedded_dsn
from leadgen_core.db.migrate import migrate
from leadgen_core.db.pool import Database
from leadgen_core.redaction import redact
from leadgen_core.runtime import app_dsn, owner_dsn
from leadgen_core.settings import Settings
from tests.conftest import APP_ROLE, create_database, drop_database


def _migrate_and_probe(owner: str) -> None:
    migrate(owner, app_role=APP_ROLE)
    with Database(as_role(owner, role=APP_ROLE, password=None), max_size=1) as db:
        with db.global_transaction() as conn:
            assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
            assert conn.execute("SELECT count(*) FROM icp_rules").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM ssic_ref").fetchone() == (1694,)


def test_embedded_server_path(tmp_path: Path) -> None:
    dsn = embedded_dsn(tmp_path, name="pg")
    assert "host=" in dsn or "host%3D" in dsn or "?host" in dsn  # a private unix socket, no TCP port
    _migrate_and_probe(dsn)


def test_settings_choose_embedded_when_unset(tmp_path: Path) -> None:
    s = Settings(LEADGEN_HOME=str(tmp_path))  # type: ignore[call-arg]
    owner = owner_dsn(s)
    assert str(tmp_path) in owner
    assert "user=leadgen_app" in app_dsn(s, owner=owner)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The real server is exercised when one is configured; the embedded one always is.
    if "server_kind" in metafunc.fixturenames:
        kinds = ["embedded"] + (["real"] if os.environ.get("LEADGEN_TEST_DATABASE_URL") else [])
        metafunc.parametrize("server_kind", kinds)


def test_fresh_database_on_each_server(server_kind: str, tmp_path: Path) -> None:
    server = os.environ["LEADGEN_TEST_DATABASE_URL"] if server_kind == "real" else embedded_dsn(tmp_path, name="pg2")
    name, dsn = create_database(server, prefix="leadgen_path")
    try:
        _migrate_and_probe(dsn)
        with psycopg.connect(dsn) as conn:
            assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 150000
    finally:
        drop_database(server, name)


def test_dsn_helpers_never_leak_passwords() -> None:
    dsn = "postgresql://owner:hunter2@db.example:5432/leadgen"
    assert "hunter2" not in redact(f"could not connect to {dsn}")
    assert "hunter2" not in redact("host=x password=hunter2 dbname=y")
    url = sqlalchemy_url("host=/tmp/pg dbname=leadgen user=postgres", search_path="dagster")
    assert url.startswith("postgresql+psycopg2://postgres@/leadgen?") and "search_path%3Ddagster" in url


def test_cli_gives_the_embedded_server_a_private_runtime_dir(tmp_path: Path) -> None:
    """Without XDG_RUNTIME_DIR, every command used to warn (platformdirs, through pgserver)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "LEADGEN_DATABASE_URL")}
    env |= {"LEADGEN_HOME": str(tmp_path / "home"), "LEADGEN_APP_DATABASE_URL": ""}
    out = subprocess.run([sys.executable, "-m", "leadgen_dagster.cli", "db", "status"], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "XDG_RUNTIME_DIR" not in out.stderr, out.stderr
    run_dir = tmp_path / "home" / "run"
    assert run_dir.is_dir() and (run_dir.stat().st_mode & 0o777) == 0o700
