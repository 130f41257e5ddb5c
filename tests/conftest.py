"""Shared fixtures.

Real: a Postgres server (LEADGEN_TEST_DATABASE_URL, or the embedded pgserver under
.leadgen/pgtest), and a fresh database created for this test session and dropped after it,
migrated by the real migrator. Tenant data is touched as the application role, which has no
BYPASSRLS, so row-level security is really in force.
"""

from __future__ import annotations

import os
import uuid

# Step retries back off 30 s in production; tests keep the retries and drop the wait. Set before
# leadgen_dagster is imported, since the RetryPolicy is built with the definitions.
os.environ.setdefault("STEP_RETRY_DELAY_S", "0")
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from leadgen_core.db.dsn import as_role, with_database
from leadgen_core.db.embedded import embedded_dsn
from leadgen_core.db.migrate import group_role_of, migrate
from leadgen_core.db.pool import Database

ROOT = Path(__file__).resolve().parents[1]
APP_ROLE = os.environ.get("LEADGEN_APP_ROLE", "leadgen_app")
KEEP_TABLES = {"ssic_ref", "schema_migrations"}


@dataclass(frozen=True)
class DbHandle:
    server_dsn: str  # maintenance database on the same server
    owner_dsn: str
    app_dsn: str
    name: str


def server_dsn() -> str:
    url = os.environ.get("LEADGEN_TEST_DATABASE_URL")
    if url:
        return url
    return embedded_dsn(ROOT / ".leadgen", name="pgtest")


def create_database(server: str, prefix: str = "leadgen_test") -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - generated identifier, no user input
    return name, with_database(server, name)


def drop_database(server: str, name: str) -> None:
    """Drop the database and its own application group role (sql/010), which would outlive it."""
    group = None
    try:
        with psycopg.connect(with_database(server, name), autocommit=True) as conn:
            group = group_role_of(conn)
    except psycopg.OperationalError:
        pass  # already gone
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if group:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))


@pytest.fixture(scope="session")
def pg_server() -> str:
    return server_dsn()


@pytest.fixture(scope="session")
def test_db(pg_server: str) -> Iterator[DbHandle]:
    name, owner = create_database(pg_server)
    try:
        migrate(owner, app_role=APP_ROLE)
        yield DbHandle(pg_server, owner, as_role(owner, role=APP_ROLE, password=None), name)
    finally:
        drop_database(pg_server, name)


def truncate_all(owner_dsn: str) -> None:
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename").fetchall()
        names = [r[0] for r in rows if r[0] not in KEEP_TABLES]
        if names:
            conn.execute("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def clean_db(test_db: DbHandle) -> DbHandle:
    """The session database with every table but reference data emptied."""
    truncate_all(test_db.owner_dsn)
    return test_db


@pytest.fixture
def app_db(clean_db: DbHandle) -> Iterator[Database]:
    db = Database(clean_db.app_dsn, min_size=1, max_size=4, name="leadgen-test")
    with db:
        yield db


@pytest.fixture
def owner_conn(clean_db: DbHandle) -> Iterator[psycopg.Connection]:
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        yield conn


def add_tenant(owner: psycopg.Connection, tenant_id: str, *, rules: dict | None = None, odoo: bool = True) -> None:
    """A tenant with optional ICP rules and an active Odoo connection, written as the owner."""
    from psycopg.types.json import Jsonb

    owner.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant_id, tenant_id.title()))
    if odoo:
        owner.execute(
            "INSERT INTO odoo_connections (tenant_id, base_url, db_name, protocol, login, secret_ref) "
            "VALUES (%s, 'http://127.0.0.1:9', 'sandbox', 'jsonrpc', 'admin', 'env:ODOO_SANDBOX_KEY')",
            (tenant_id,),
        )
    if rules is not None:
        owner.execute("INSERT INTO icp_rules (tenant_id, payload) VALUES (%s, %s)", (tenant_id, Jsonb(rules)))
