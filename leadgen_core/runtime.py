"""Where the database is: the one place that decides between the embedded server and a real one."""

from __future__ import annotations

import psycopg

from leadgen_core.db.dsn import as_role, with_database
from leadgen_core.db.embedded import embedded_dsn
from leadgen_core.settings import Settings

EMBEDDED_DB = "leadgen"


def owner_dsn(settings: Settings) -> str:
    """The owner DSN: LEADGEN_DATABASE_URL, or the private embedded Postgres under LEADGEN_HOME."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    server = embedded_dsn(settings.home)
    with psycopg.connect(server, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DB,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {EMBEDDED_DB}")  # noqa: S608 - a constant identifier
    return with_database(server, EMBEDDED_DB)


def app_dsn(settings: Settings, *, owner: str | None = None) -> str:
    """The application role's DSN: LEADGEN_APP_DATABASE_URL, or the owner DSN with the role swapped."""
    if settings.app_database_url is not None:
        return settings.app_database_url.get_secret_value()
    password = settings.app_password.get_secret_value() if settings.app_password else None
    return as_role(owner or owner_dsn(settings), role=settings.app_role, password=password)


def uses_sandbox(settings: Settings) -> bool:
    """True when no vendor is configured (no key and no base URL for Tavily, Lusha, ZeroBounce or
    OpenAI): `leadgen dev` and `leadgen night` then start the sandbox simulators. One configured
    vendor means a real setup, which the sandbox must never override."""
    s = settings
    keys = (s.tavily_api_key, s.lusha_api_key, s.zerobounce_api_key, s.openai_api_key)
    urls = (s.tavily_base_url, s.lusha_base_url, s.zerobounce_base_url, s.openai_base_url)
    return all(v is None for v in (*keys, *urls))
