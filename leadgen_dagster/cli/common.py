"""What every command shares: settings, the owner connection, and error reporting."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
import psycopg

from leadgen_core.errors import LeadgenError
from leadgen_core.redaction import redact
from leadgen_core.settings import Settings
from leadgen_dagster.cli import errors

F = TypeVar("F", bound=Callable[..., Any])


def settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError: say which variable is wrong
        raise click.ClickException(f"invalid configuration: {redact(str(exc))}") from None


def fail(message: str) -> NoReturn:
    """`error: MESSAGE` as one line on stderr, exit 2 (see cli/errors.py)."""
    errors.fail(message)


def not_migrated(exc: BaseException) -> str | None:
    """NOT_MIGRATED when EXC is a missing function or table and the owner's database has migrations pending."""
    from leadgen_core.db.schema_check import explain
    from leadgen_core.runtime import owner_dsn

    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with psycopg.connect(owner_dsn(settings()), connect_timeout=10, autocommit=True) as conn:
            yield conn

    return explain(exc, connect)


def friendly(fn: F) -> F:
    """Turn domain and database errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeadgenError as exc:
            fail(not_migrated(exc) or redact(str(exc)))
        except psycopg.Error as exc:
            fail(not_migrated(exc) or _database_error(exc))
        except OSError as exc:
            if exc.filename is None:  # not a file the user named: the root group's net reports it
                raise
            fail(f"cannot use {exc.filename}: {exc.strerror or exc}")
        return None

    return wrapper  # type: ignore[return-value]


def _database_error(exc: psycopg.Error) -> str:
    # no SQLSTATE on an OperationalError: the server is down, unreachable or refused us
    unreachable = isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None
    return f"{'cannot connect to the database' if unreachable else 'database error'}: {redact(str(exc)).strip()}"


@contextmanager
def owner_conn() -> Iterator[psycopg.Connection]:
    """A connection as the owner (admin commands), in one transaction."""
    from leadgen_core.runtime import owner_dsn

    dsn = owner_dsn(settings())
    try:
        conn = psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as exc:
        fail(f"cannot connect to the database: {redact(str(exc)).strip()}")
        raise
    with conn, conn.transaction():
        yield conn


def resolve_tenant(conn: psycopg.Connection, id_or_name: str) -> str:
    from leadgen_core.tenants import resolve

    return resolve(conn, id_or_name).tenant_id


@contextmanager
def tenant_conn(tenant: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """The owner connection scoped to TENANT (id or name), and the tenant's id."""
    from leadgen_core.db.pool import set_tenant

    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        set_tenant(conn, tid)
        yield conn, tid
