"""Named statements over the database's own catalogs: a table's columns, advisory locks."""

from __future__ import annotations

import psycopg

COLUMNS_SQL = (
    "SELECT column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position"
)


def table_columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, data type) of each column of public.TABLE, in order."""
    return [(str(c[0]), str(c[1])) for c in conn.execute(COLUMNS_SQL, (table,)).fetchall()]


def try_advisory_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take the session-level advisory lock KEY if free; False when another session holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    return bool(row and row[0])


def advisory_unlock(conn: psycopg.Connection, key: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
