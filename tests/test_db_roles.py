"""Database roles: one deployment's app role is shut out of another's, and cannot raise its caps.

Real: one Postgres server holding two (or three) freshly created databases, each migrated by the
real migrator with its own application login role, and the product's own pool. Nothing simulated.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from leadgen_core.db.dsn import as_role
from leadgen_core.db.migrate import SQL_DIR, group_role_of, migrate
from leadgen_core.db.pool import Database
from leadgen_core.errors import DatabaseError
from leadgen_core.spend.budget import reserve, set_cap
from tests.conftest import DbHandle, add_tenant, create_database, drop_database

D = date(2026, 1, 5)


@dataclass(frozen=True)
class Deployment:
    name: str
    owner: str
    app_role: str

    @property
    def app(self) -> str:
        return as_role(self.owner, role=self.app_role, password=None)


def _drop_role(server: str, role: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def two_deployments(pg_server: str) -> Iterator[tuple[Deployment, Deployment]]:
    suffix = uuid.uuid4().hex[:8]
    made: list[Deployment] = []
    try:
        for label in ("a", "b"):
            name, owner = create_database(pg_server, prefix=f"leadgen_dep{label}")
            made.append(Deployment(name, owner, f"leadgen_app_{label}_{suffix}"))
            migrate(owner, app_role=made[-1].app_role)
            with psycopg.connect(owner, autocommit=True) as conn:
                add_tenant(conn, "acme")
                conn.execute(
                    "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
                    "VALUES ('201900001A', 'Shared Co', '\\x00', %s, %s)",
                    (D, D),
                )
        yield made[0], made[1]
    finally:
        for dep in made:
            drop_database(pg_server, dep.name)
            _drop_role(pg_server, dep.app_role)


def test_each_app_role_is_refused_by_the_other_database(two_deployments: tuple[Deployment, Deployment]) -> None:
    a, b = two_deployments
    for mine, other in ((a, b), (b, a)):
        with psycopg.connect(mine.app) as conn:  # its own database: fine
            assert conn.execute("SELECT count(*) FROM companies").fetchone() == (1,)
        stranger = as_role(other.owner, role=mine.app_role, password=None)
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(stranger).close()


def test_a_connect_grant_alone_opens_nothing(two_deployments: tuple[Deployment, Deployment]) -> None:
    # Defence in depth: even if an operator lets B's role connect to A, A's grants belong to A's
    # group only, which B's role is not a member of (the old shared leadgen_rw let it read everything).
    a, b = two_deployments
    with psycopg.connect(a.owner, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(a.name),
                                                                          sql.Identifier(b.app_role)))  # fmt: skip
    with psycopg.connect(as_role(a.owner, role=b.app_role, password=None), autocommit=True) as conn:
        conn.execute("SELECT set_config('request.tenant_id', 'acme', false)")
        for statement in (
            "SELECT count(*) FROM companies",
            "SELECT count(*) FROM odoo_connections",
            "SELECT count(*) FROM lead_scores",
            "UPDATE lead_scores SET score = 1",
            "SELECT * FROM leadgen_tenant_directory()",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_group_is_per_database_and_the_shared_one_is_empty(two_deployments: tuple[Deployment, ...]) -> None:
    a, b = two_deployments
    groups = []
    for dep in (a, b):
        with psycopg.connect(dep.owner, autocommit=True) as conn:
            group = group_role_of(conn)
            assert group == f"leadgen_rw_{dep.name}"
            groups.append(group)
            held = conn.execute(
                "SELECT count(*) FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x "
                "WHERE x.grantee = (SELECT oid FROM pg_roles WHERE rolname = 'leadgen_rw')"
            ).fetchone()
            assert held == (0,)  # nothing left on the server-wide group
            members = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
                (dep.app_role,),
            ).fetchall()
            assert members == [(group,)]
            public_connect = conn.execute(
                "SELECT has_database_privilege('public', current_database(), 'CONNECT')"
            ).fetchone()
            assert public_connect == (False,)
    assert groups[0] != groups[1]


def test_an_old_deployment_is_moved_off_the_shared_group(pg_server: str, tmp_path: Path) -> None:
    # A database migrated up to 009 (the shared leadgen_rw) is upgraded in place.
    old = tmp_path / "sql"
    old.mkdir()
    for path in sorted(SQL_DIR.glob("00*.sql")):
        shutil.copy(path, old / path.name)
    role = f"leadgen_app_old_{uuid.uuid4().hex[:8]}"
    name, owner = create_database(pg_server, prefix="leadgen_old")
    try:
        migrate(owner, app_role=role, sql_dir=old)
        with psycopg.connect(owner, autocommit=True) as conn:
            assert conn.execute("SELECT has_table_privilege('leadgen_rw', 'companies', 'SELECT')").fetchone() == (True,)
        migrate(owner, app_role=role, group_role=f"custom_{role}")
        with psycopg.connect(owner, autocommit=True) as conn:
            assert group_role_of(conn) == f"custom_{role}"
            assert conn.execute("SELECT has_table_privilege('leadgen_rw', 'companies', 'SELECT')").fetchone() == (
                False,
            )
            assert conn.execute("SELECT pg_has_role(%s, 'leadgen_rw', 'MEMBER')", (role,)).fetchone() == (False,)
        with psycopg.connect(as_role(owner, role=role, password=None)) as conn:
            assert conn.execute("SELECT count(*) FROM companies").fetchone() == (0,)
    finally:
        drop_database(pg_server, name)
        _drop_role(pg_server, role)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO tenant_budgets (tenant_id, vendor, daily_cap) VALUES ('acme', 'lusha', 1000000)",
        "UPDATE tenant_budgets SET daily_cap = 1000000",
        "DELETE FROM tenant_budgets",
        "DELETE FROM vendor_usage",
        "UPDATE vendor_usage SET usage_date = usage_date - 1",
        "UPDATE vendor_usage SET vendor = 'spent-elsewhere'",
        "TRUNCATE vendor_usage",
    ],
)
def test_the_app_role_cannot_raise_its_caps(app_db: Database, owner_conn, statement: str) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "acme")
    set_cap(owner_conn, tenant_id="acme", vendor="lusha", cap=5)  # the owner sets caps
    owner_conn.execute("INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units) VALUES ('acme', %s, 'lusha', 5)",
                       (D,))  # fmt: skip
    with pytest.raises(DatabaseError, match="permission denied"):
        with app_db.tenant_transaction("acme") as conn:
            conn.execute(statement)
    assert owner_conn.execute("SELECT daily_cap FROM tenant_budgets").fetchall() == [(5,)]
    assert owner_conn.execute("SELECT usage_date, vendor, units FROM vendor_usage").fetchall() == [(D, "lusha", 5)]


def test_the_ledger_still_reserves_and_releases(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.spend.budget import release

    add_tenant(owner_conn, "acme")
    with app_db.tenant_transaction("acme") as conn:
        assert reserve(conn, tenant_id="acme", day=D, vendor="lusha", units=3, cap=5) == 3
        assert reserve(conn, tenant_id="acme", day=D, vendor="lusha", units=2, cap=5) == 5
        release(conn, tenant_id="acme", day=D, vendor="lusha", units=1)
    assert owner_conn.execute("SELECT units, calls FROM vendor_usage").fetchall() == [(4, 2)]


def test_a_session_setting_does_not_survive_the_pool(clean_db: DbHandle, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "acme")
    owner_conn.execute("INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units) VALUES ('acme', %s, 'lusha', 5)",
                       (D,))  # fmt: skip
    with Database(clean_db.app_dsn, min_size=1, max_size=1, name="leadgen-reset") as db:
        with db.global_transaction() as conn:  # a careless (or hostile) session-wide tenant
            conn.execute("SELECT set_config('request.tenant_id', 'acme', false)")
            conn.execute("SET statement_timeout = '1ms'")
        with db.global_transaction() as conn:  # the same physical connection, lent again
            assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone()[0] in (None, "")
            assert conn.execute("SELECT count(*) FROM vendor_usage").fetchone() == (0,)
            assert conn.execute("SHOW statement_timeout").fetchone() != ("1ms",)
