"""The connection pool and the two kinds of transaction the product uses.

`tenant_transaction(tenant_id)` sets `request.tenant_id` with `set_config(..., true)`: the setting
is local to the transaction, so a pooled connection never carries one tenant's setting into the
next borrower's work. `global_transaction()` sets nothing: tenant tables then show zero rows, so
forgetting the tenant fails closed instead of leaking. Code that sets anything for the whole
session (`set_config(..., false)`, `SET`) loses it when the connection goes back to the pool:
`reset_session` runs on every check-in, so no borrower inherits the last one's tenant.

Round trips. Each transaction is two round trips to the server: `BEGIN` together with the
tenant's `set_config` as one simple query, then `COMMIT` (or `ROLLBACK`) together with the session
reset. psycopg's own transaction blocks and the pool's reset callback took seven, plus a hand-off
to the pool's worker thread on every check-in: 450 -> 150 us of client CPU for a one-statement
tenant transaction, and a night makes tens of thousands of them. The connections are therefore in
autocommit mode and the block is opened and closed here; `conn.transaction()` inside it still
makes savepoints, as before. `global_statement()` lends a connection outside any block, for one
statement that is its own transaction (a rate limiter's booking): one round trip.
`tenant_pipeline(tenant_id)` sends BEGIN, the tenant's setting, the block's statements, COMMIT and
the reset as one pipeline: one round trip for a block that reads nothing (a paid call's record).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg.conninfo
from psycopg_pool import ConnectionPool

from leadgen_core.db.schema_check import NOT_MIGRATED, pending_migrations, schema_missing
from leadgen_core.errors import DatabaseError, MigrationError, TenantIsolationError
from leadgen_core.redaction import redact

# \Z, not $: "$" also matches before a trailing newline, so "alpha\n" would pass as a tenant id.
TENANT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}\Z")
SET_TENANT_SQL = "SELECT set_config('request.tenant_id', %s, true)"
# RESET ALL restores every ordinary setting; a custom one (request.tenant_id) keeps an empty
# placeholder after it, so it is cleared by name as well.
RESET_SESSION_SQL = ("RESET ALL", "SELECT set_config('request.tenant_id', '', false)")
# One simple query each (no parameters, so psycopg sends them in one round trip). The tenant id is
# written into BEGIN's query as a literal: check_tenant_id allows only [a-z0-9-], so it cannot quote.
BEGIN_SQL = "BEGIN"
BEGIN_TENANT_SQL = "BEGIN; SELECT set_config('request.tenant_id', '{tenant_id}', true)"
COMMIT_RESET_SQL = "COMMIT; " + "; ".join(RESET_SESSION_SQL)
ROLLBACK_RESET_SQL = "ROLLBACK; " + "; ".join(RESET_SESSION_SQL)


# The pool's sessions plan a prepared statement once (psycopg prepares a statement after its fifth
# execution on a connection). The statements repeated that often are the per-company key lookups
# and writes of the stages and the ledger, whose plan does not depend on the values; under the
# default ("auto") the server kept re-planning those with an array parameter (`= ANY(%s)`), since
# a custom plan for one element looks cheaper than the generic one: 1.8 s of planning in a
# 10 x 200 night (pg_stat_statements, BENCHMARKS.md 2026-12-06). A statement run fewer times (a
# stage's set-wide query) is not prepared, so this does not touch it. Sent as a startup option, it
# is the session's default, which RESET ALL keeps.
SESSION_OPTIONS = "-c plan_cache_mode=force_generic_plan"


def pool_kwargs(dsn: str, name: str) -> dict[str, object]:
    """The pool's connection arguments: autocommit, the application name and SESSION_OPTIONS
    added to any `options` the DSN carries."""
    try:
        given = str(psycopg.conninfo.conninfo_to_dict(dsn).get("options") or "")
    except psycopg.ProgrammingError:
        given = ""  # an unparsable DSN fails at connect time, with the driver's message
    options = f"{given} {SESSION_OPTIONS}".strip()
    return {"autocommit": True, "application_name": name, "options": options}


# Transactions this process has opened (every pool's): a cheap count the benchmarks report a
# company (bench.nightly's `db_transactions_per_company`), since each costs two round trips and
# ~100 us of CPU on each side of the socket however little it does.
_opened = itertools.count()


def transactions_opened() -> int:
    """How many transactions the pools of this process have opened so far."""
    return next(copy.copy(_opened))  # a copy's next value, without advancing the counter itself


def set_tenant(conn: psycopg.Connection, tenant_id: str) -> None:
    """Scope CONN's current transaction to TENANT_ID: row-level security then shows only its rows."""
    conn.execute(SET_TENANT_SQL, (tenant_id,))


def check_tenant_id(tenant_id: str) -> str:
    """The tenant id, or TenantIsolationError when it cannot be one."""
    if not isinstance(tenant_id, str) or not TENANT_ID_RE.fullmatch(tenant_id):
        raise TenantIsolationError(f"invalid tenant id {tenant_id!r}: expected lowercase letters, digits and '-'")
    return tenant_id


def reset_session(conn: psycopg.Connection) -> None:
    """Clear every session-level setting of CONN (an autocommit connection) in one round trip."""
    conn.execute("; ".join(RESET_SESSION_SQL))


def _abandon(conn: psycopg.Connection) -> None:
    """Roll CONN's transaction back and reset its session; close it when even that fails.

    A closed connection is discarded by the pool, so a connection whose reset did not run is never
    lent again."""
    try:
        conn.execute(ROLLBACK_RESET_SQL)
    except Exception:
        conn.close()


class Database:
    """A psycopg 3 pool with tenant-scoped and global transactions."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10, name: str = "leadgen") -> None:
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=False,
            name=name,
            kwargs=pool_kwargs(dsn, name),
        )
        self._opened = False
        self._schema_ok = False  # set once a missing-schema error proved to be on a migrated database

    def open(self) -> Database:
        if not self._opened:
            try:
                self._pool.open(wait=True, timeout=30)
            except psycopg.Error as exc:
                raise DatabaseError(f"cannot connect to the database: {redact(str(exc))}") from None
            except Exception as exc:  # psycopg_pool.PoolTimeout carries the DSN's host only
                raise DatabaseError(f"cannot connect to the database: {redact(str(exc))}") from None
            self._opened = True
        return self

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tenant_transaction(
        self, tenant_id: str, *, operation: str = "tenant transaction"
    ) -> Iterator[psycopg.Connection]:
        """A transaction in which row-level security shows only TENANT_ID's rows."""
        check_tenant_id(tenant_id)
        self.open()
        try:
            with self._block(BEGIN_TENANT_SQL.format(tenant_id=tenant_id)) as conn:
                yield conn
        except psycopg.Error as exc:
            self._not_migrated(exc)
            raise DatabaseError(f"{operation} for tenant {tenant_id} failed: {redact(str(exc)).strip()}") from exc

    @contextmanager
    def global_transaction(self, *, operation: str = "global transaction") -> Iterator[psycopg.Connection]:
        """A transaction for the shared tables; tenant tables show nothing in it."""
        self.open()
        try:
            with self._block(BEGIN_SQL) as conn:
                yield conn
        except psycopg.Error as exc:
            self._not_migrated(exc)
            raise DatabaseError(f"{operation} failed: {redact(str(exc)).strip()}") from exc

    @contextmanager
    def tenant_pipeline(self, tenant_id: str, *, operation: str = "tenant transaction") -> Iterator[psycopg.Connection]:
        """`tenant_transaction`, pipelined: BEGIN, the tenant's setting, the caller's statements, then
        COMMIT and the session's reset are sent together and answered together, one round trip
        where the block costs two more (a caller that reads a result waits there for what was
        queued before it). For a paid call's record, which reads nothing. On an error the
        transaction is rolled back and the session reset, as in `tenant_transaction`."""
        check_tenant_id(tenant_id)
        self.open()
        try:
            with self._pool.connection() as conn:
                next(_opened)
                try:
                    with conn.pipeline():
                        conn.execute("BEGIN")
                        conn.execute(SET_TENANT_SQL, (tenant_id,))
                        yield conn
                        for statement in ("COMMIT", *RESET_SESSION_SQL):
                            conn.execute(statement)
                except BaseException:
                    _abandon(conn)
                    raise
        except psycopg.Error as exc:
            self._not_migrated(exc)
            raise DatabaseError(f"{operation} for tenant {tenant_id} failed: {redact(str(exc)).strip()}") from exc

    @contextmanager
    def global_statement(self, *, operation: str = "global statement") -> Iterator[psycopg.Connection]:
        """A pooled connection outside any transaction block, for a caller that runs ONE statement
        on the shared tables (a rate limiter's booking), or one call of a function that sets the
        tenant for its own transaction (`spend_open`, `spend_close`): the statement is its own transaction, so
        it saves `global_transaction`'s BEGIN and COMMIT round trips (~65–125 us of client CPU,
        bench in BENCHMARKS.md). Nothing is set on the session, so nothing needs resetting. A
        caller that opened a transaction anyway has it rolled back, and gets an error."""
        self.open()
        try:
            with self._pool.connection() as conn:
                next(_opened)
                yield conn
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    _abandon(conn)
                    raise DatabaseError(f"{operation}: a transaction was left open on a statement connection")
        except psycopg.Error as exc:
            self._not_migrated(exc)
            raise DatabaseError(f"{operation} failed: {redact(str(exc)).strip()}") from exc

    @contextmanager
    def _block(self, begin_sql: str) -> Iterator[psycopg.Connection]:
        """A pooled connection inside a transaction opened by BEGIN_SQL; committed and reset on exit.

        On an error the transaction is rolled back and the session reset (or the connection closed
        when that fails too) before the error goes on."""
        with self._pool.connection() as conn:
            next(_opened)
            try:
                conn.execute(begin_sql)
                yield conn
            except BaseException:
                _abandon(conn)
                raise
            try:
                conn.execute(COMMIT_RESET_SQL)
            except BaseException:
                _abandon(conn)  # a failed COMMIT has ended the transaction, but the reset did not run
                raise

    def _not_migrated(self, exc: psycopg.Error) -> None:
        """MigrationError(NOT_MIGRATED) when EXC is a missing function or table of an unmigrated database."""
        if self._schema_ok or not schema_missing(exc):
            return

        @contextmanager
        def fresh() -> Iterator[psycopg.Connection]:
            with self._block(BEGIN_SQL) as conn:
                yield conn

        try:
            with fresh() as conn:
                pending = pending_migrations(conn)
        except psycopg.Error:
            return  # cannot tell: the original error stands
        if not pending:
            self._schema_ok = True  # migrated: the error is a real one, and is not checked again
            return
        raise MigrationError(NOT_MIGRATED) from exc
