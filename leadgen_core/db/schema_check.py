"""One answer to "is this database migrated?", for the errors a missing schema causes.

On a database `leadgen db migrate` never ran on (or one behind the code), the first query fails
with Postgres's own words: `function leadgen_tenant_directory() does not exist`, `relation
"tenants" does not exist`. `explain` turns such an error (SQLSTATE 42883 undefined_function or
42P01 undefined_table, anywhere in the exception's cause chain) into NOT_MIGRATED when a fresh
connection confirms that migrations are pending; any other error, or one on a migrated database
(a real bug), is left alone. The pool (`Database`) and the CLI's error handlers both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg

from leadgen_core.db.migrate import SQL_DIR, discover

NOT_MIGRATED = "the database is not migrated: run `leadgen db migrate`"
SCHEMA_SQLSTATES = frozenset({"42883", "42P01"})  # undefined_function, undefined_table
LEDGER_SQL = """
SELECT to_regclass('public.schema_migrations') IS NOT NULL,
       to_regclass('public.schema_migrations') IS NOT NULL
           AND has_table_privilege('public.schema_migrations', 'SELECT')
"""

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def schema_missing(exc: BaseException | None) -> bool:
    """Whether EXC, or an exception it was raised from, is Postgres naming a missing function or table."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, psycopg.Error) and exc.sqlstate in SCHEMA_SQLSTATES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """The versions of the migration files not applied on CONN's database (all, if it never was).

    A role that may not read the ledger (the application role) sees only whether it exists."""
    row = conn.execute(LEDGER_SQL).fetchone()
    exists, readable = (bool(row[0]), bool(row[1])) if row else (False, False)
    versions = [m.version for m in discover(SQL_DIR)]
    if not exists:
        return versions
    if not readable:
        return []
    applied = {str(r[0]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    return [v for v in versions if v not in applied]


def explain(exc: BaseException, connect: Connect) -> str | None:
    """NOT_MIGRATED when EXC comes from a missing schema and migrations are pending, else None."""
    if not schema_missing(exc):
        return None
    try:
        with connect() as conn:
            pending = pending_migrations(conn)
    except psycopg.Error:
        return None  # cannot tell: the original error stands
    return NOT_MIGRATED if pending else None
