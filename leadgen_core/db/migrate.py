"""Numbered SQL migrations, applied as the owner.

Each `NNN_name.sql` file runs in its own transaction and is recorded with its checksum. A
session advisory lock serialises migrators, so two that start together end in one correct
state. A file that was applied and has since changed is refused: history is never rewritten.
After the files, whatever a migration granted to `leadgen_rw` (the name the files use for "the
application group") is moved to this database's own group (`leadgen_group_role()`, from
sql/010), the application login role is ensured (no superuser, no BYPASSRLS, member of that
group only) and reference data is seeded. The group is per database, so two deployments on one
server (each with its own LEADGEN_APP_ROLE) cannot read each other's rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from leadgen_core.db.seed import seed_reference_data
from leadgen_core.errors import ConfigError, MigrationError
from leadgen_core.redaction import redact

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
MIGRATION_RE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# An arbitrary constant naming "the leadgen migrator" in pg_advisory_lock's key space.
LOCK_KEY = 7_245_001
SHARED_GROUP = "leadgen_rw"  # the server-wide group of migrations 003-009; left empty after each run

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    filename    text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    filename: str
    checksum: str
    text: str


@dataclass(frozen=True)
class MigrationStatus:
    version: str
    filename: str
    state: str  # applied | pending | changed | missing
    applied_at: datetime | None


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise ConfigError(f"migrations folder not found: {sql_dir}")
    found: list[Migration] = []
    for path in sorted(sql_dir.iterdir()):
        m = MIGRATION_RE.match(path.name)
        if not m:
            continue
        data = path.read_bytes()
        found.append(Migration(m.group(1), path.name, hashlib.sha256(data).hexdigest(), data.decode("utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def _applied(conn: psycopg.Connection) -> dict[str, tuple[str, str, datetime]]:
    rows = conn.execute("SELECT version, filename, checksum, applied_at FROM schema_migrations").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def migrate(
    owner_dsn: str,
    *,
    app_role: str,
    app_password: str | None = None,
    group_role: str | None = None,
    sql_dir: Path = SQL_DIR,
) -> list[str]:
    """Apply pending migrations; return the filenames applied (empty when up to date).

    GROUP_ROLE names this database's group when sql/010 first runs (default: derived from the
    database name); once created, the database keeps it.
    """
    if not ROLE_RE.fullmatch(app_role) or app_role == SHARED_GROUP:
        raise ConfigError(f"LEADGEN_APP_ROLE {app_role!r} is not a valid role name")
    if group_role is not None and (not ROLE_RE.fullmatch(group_role) or group_role == SHARED_GROUP):
        raise ConfigError(f"LEADGEN_GROUP_ROLE {group_role!r} is not a valid role name")
    migrations = discover(sql_dir)
    applied_now: list[str] = []
    try:
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                if group_role:
                    conn.execute("SELECT set_config('leadgen.group_role', %s, false)", (group_role,))
                conn.execute(CREATE_LEDGER)
                applied = _applied(conn)
                for mig in migrations:
                    if mig.version in applied:
                        if applied[mig.version][1] != mig.checksum:
                            raise MigrationError(
                                f"{mig.filename} was applied and has changed since; write a new migration instead"
                            )
                        continue
                    try:
                        with conn.transaction():
                            conn.execute(mig.text.encode("utf-8"))
                            conn.execute(
                                "INSERT INTO schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)",
                                (mig.version, mig.filename, mig.checksum),
                            )
                    except psycopg.Error as exc:
                        raise MigrationError(f"{mig.filename} failed: {redact(str(exc)).strip()}") from exc
                    applied_now.append(mig.filename)
                if _has_group_function(conn):
                    conn.execute("SELECT leadgen_move_shared_grants()")
                _ensure_app_role(conn, app_role=app_role, password=app_password)
                seed_reference_data(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    except psycopg.OperationalError as exc:
        raise MigrationError(f"cannot connect to migrate: {redact(str(exc)).strip()}") from None
    return applied_now


def _ensure_app_role(conn: psycopg.Connection, *, app_role: str, password: str | None) -> None:
    role = sql.Identifier(app_role)
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app_role,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN INHERIT").format(role))
            except psycopg.errors.DuplicateObject:
                pass  # another database's migrator created it a moment ago; roles are cluster-wide
        conn.execute(
            sql.SQL("ALTER ROLE {} LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(role)
        )
        if password:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
        group = group_role_of(conn)
        if group is None:  # migrations before 010 (a test's partial folder): the old shared group
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(SHARED_GROUP), role))
            return
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
        shared = conn.execute(
            "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "JOIN pg_roles r ON r.oid = m.member WHERE g.rolname = %s AND r.rolname = %s",
            (SHARED_GROUP, app_role),
        ).fetchone()
        if shared:  # membership of the server-wide group reached other deployments' databases
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(SHARED_GROUP), role))


def _has_group_function(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regprocedure('public.leadgen_group_role()') IS NOT NULL").fetchone()
    return bool(row and row[0])


def group_role_of(conn: psycopg.Connection) -> str | None:
    """This database's application group (sql/010), or None before that migration."""
    if not _has_group_function(conn):
        return None
    row = conn.execute("SELECT leadgen_group_role()").fetchone()
    return str(row[0]) if row else None


def status(owner_dsn: str, *, sql_dir: Path = SQL_DIR) -> list[MigrationStatus]:
    """Each migration file and whether it is applied, pending or changed since it was applied."""
    migrations = discover(sql_dir)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        has_ledger = conn.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
        applied = _applied(conn) if has_ledger and has_ledger[0] else {}
    out: list[MigrationStatus] = []
    for mig in migrations:
        row = applied.pop(mig.version, None)
        if row is None:
            out.append(MigrationStatus(mig.version, mig.filename, "pending", None))
        else:
            state = "applied" if row[1] == mig.checksum else "changed"
            out.append(MigrationStatus(mig.version, mig.filename, state, row[2]))
    for version, row in sorted(applied.items()):
        out.append(MigrationStatus(version, row[0], "missing", row[2]))
    return out
