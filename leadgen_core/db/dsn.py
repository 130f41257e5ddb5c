"""Connection strings: which server, which role, and how to print one safely."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from leadgen_core.errors import ConfigError
from leadgen_core.redaction import redact


def with_database(dsn: str, dbname: str) -> str:
    """The same server and role, another database."""
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def as_role(dsn: str, *, role: str, password: str | None) -> str:
    """The same server and database, logged in as another role."""
    params = conninfo_to_dict(dsn)
    params["user"] = role
    params.pop("password", None)
    if password:
        params["password"] = password
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def database_name(dsn: str) -> str:
    name = conninfo_to_dict(dsn).get("dbname")
    if not name:
        raise ConfigError(f"the DSN names no database: {redact(dsn)}")
    return str(name)


def sqlalchemy_url(dsn: str, *, search_path: str | None = None) -> str:
    """A psycopg2 SQLAlchemy URL for Dagster's storage (dagster-postgres), with an optional schema."""
    from urllib.parse import quote, urlencode

    p = conninfo_to_dict(dsn)
    user = quote(str(p.get("user") or "postgres"), safe="")
    password = p.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    host = str(p.get("host") or "")
    query: dict[str, str] = {}
    netloc_host = host
    if host.startswith("/"):
        query["host"] = host  # a unix socket directory goes in the query string
        netloc_host = ""
    port = p.get("port")
    if port and netloc_host:
        netloc_host = f"{netloc_host}:{port}"
    elif port:
        query["port"] = str(port)
    if search_path:
        query["options"] = f"-c search_path={search_path}"
    qs = f"?{urlencode(query)}" if query else ""
    return f"postgresql+psycopg2://{auth}@{netloc_host}/{p.get('dbname') or 'postgres'}{qs}"
