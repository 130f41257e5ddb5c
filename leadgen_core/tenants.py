"""The tenant directory: create, list, deactivate, resolve an id-or-name, connect Odoo.

Admin operations run as the owner (the CLI); the pipeline reads the directory through the
`leadgen_tenant_directory()` function, which exposes ids, names and status, never secrets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

from leadgen_core.db.pool import TENANT_ID_RE
from leadgen_core.errors import ConfigError
from leadgen_core.secrets import secret_ref
from leadgen_core.urls import check_odoo_url

_SLUG_RE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    status: str
    has_active_connection: bool


def slugify(name: str) -> str:
    """A tenant id from NAME: lowercase ASCII letters and digits joined by '-'. Accents are dropped
    ("Café Ünited" -> "cafe-united"); a name with no Latin letter or digit at all (a Chinese name,
    say) has none to give, and the caller chooses the id (`leadgen tenants add NAME --id ID`)."""
    # casefold first: "ß" becomes "ss" (NFKD would drop it); then NFKD splits off the accents
    folded = unicodedata.normalize("NFKD", name.strip().casefold()).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_RE.sub("-", folded).strip("-")[:63].strip("-")
    if not slug or not TENANT_ID_RE.match(slug):
        raise ConfigError(
            f"cannot make a tenant id from name {name[:80]!r}: it has no Latin letters or digits; "
            "choose one with --id (lowercase letters, digits and '-')"
        )
    return slug


def check_tenant_id(tenant_id: str) -> str:
    """TENANT_ID as given, or ConfigError: what the database and Dagster's partition keys accept."""
    if not TENANT_ID_RE.match(tenant_id):
        raise ConfigError(
            f"tenant id {tenant_id[:80]!r} is not valid: 1 to 63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return tenant_id


def directory(conn: psycopg.Connection) -> list[Tenant]:
    rows = conn.execute(
        "SELECT tenant_id, name, status, has_active_connection FROM leadgen_tenant_directory()"
    ).fetchall()
    return [Tenant(*r) for r in rows]


def check_tenant_name(name: str) -> str:
    """NAME trimmed, or ConfigError: 1 to 200 characters, none of them a control character.

    A newline or tab in a name splits log lines and `tenants list` rows, and lets a name pose as
    another tenant's line; isprintable() also refuses other invisible characters (U+200B, U+2028).
    """
    if not name.isprintable():
        raise ConfigError(f"tenant name {name[:80]!r} contains control or invisible characters (newline, tab, ...)")
    name = name.strip()
    if not name or len(name) > 200:
        raise ConfigError("tenant name must be 1 to 200 characters")
    return name


def add_tenant(conn: psycopg.Connection, name: str, tenant_id: str | None = None) -> Tenant:
    """Create tenant NAME with id TENANT_ID, or by default a slug of the name."""
    name = check_tenant_name(name)
    tenant_id = check_tenant_id(tenant_id) if tenant_id is not None else slugify(name)
    # an id or a name may not be another tenant's id or name either: `resolve` takes either
    row = conn.execute(
        "SELECT tenant_id, name FROM tenants WHERE tenant_id IN (%(id)s, lower(%(name)s))"
        " OR lower(name) IN (lower(%(name)s), %(id)s)",
        {"id": tenant_id, "name": name},
    ).fetchone()
    if row:
        other_id, other_name = str(row[0]), str(row[1])
        if name.lower() in (other_id, other_name.lower()):
            raise ConfigError(f"tenant {name!r} already exists (id {other_id})")
        raise ConfigError(
            f"the id {tenant_id!r} is taken: it is the id or the name of tenant {other_id} ({other_name[:80]}); "
            "choose another with --id"
        )
    conn.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (tenant_id, name))
    return Tenant(tenant_id, name, "active", False)


def resolve(conn: psycopg.Connection, id_or_name: str) -> Tenant:
    """A tenant by its id or its name (case-insensitive), or ConfigError naming what was asked."""
    tenants = directory(conn)
    for t in tenants:  # an id first: it is exact
        if t.tenant_id == id_or_name:
            return t
    for t in tenants:
        if t.name.lower() == id_or_name.strip().lower():
            return t
    raise ConfigError(f"no tenant with id or name {id_or_name!r} (see `leadgen tenants list`)")


def set_status(conn: psycopg.Connection, tenant_id: str, status: Literal["active", "inactive"]) -> None:
    conn.execute("UPDATE tenants SET status = %s, updated_at = now() WHERE tenant_id = %s", (status, tenant_id))


def connect_odoo(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    base_url: str,
    db_name: str,
    protocol: str,
    login: str,
    secret_env: str,
) -> None:
    """Record where the tenant's Odoo is and which environment variable holds its secret."""
    if protocol not in ("jsonrpc", "json2"):
        raise ConfigError("--protocol must be 'jsonrpc' or 'json2'")
    base_url = check_odoo_url(base_url)
    try:
        ref = secret_ref(secret_env)
    except ConfigError as exc:
        raise ConfigError(f"--secret-env must be a tenant secret variable: {exc}") from None
    if not db_name.strip() or not login.strip():
        raise ConfigError("--db and --login must not be empty")
    conn.execute(
        """
        INSERT INTO odoo_connections (tenant_id, base_url, db_name, protocol, login, secret_ref, active)
        VALUES (%s, %s, %s, %s, %s, %s, true)
        ON CONFLICT (tenant_id) DO UPDATE SET base_url = EXCLUDED.base_url, db_name = EXCLUDED.db_name,
            protocol = EXCLUDED.protocol, login = EXCLUDED.login, secret_ref = EXCLUDED.secret_ref,
            active = true, updated_at = now()
        """,
        (tenant_id, base_url, db_name, protocol, login, ref),
    )


def active_tenant_ids(tenants: list[Tenant], *, include: list[str], exclude: list[str]) -> list[str]:
    """Tenants whose night should run: active, with an active Odoo connection, filtered by the
    SCHED_TENANT_INCLUDE / SCHED_TENANT_EXCLUDE lists (ids)."""
    ids = [t.tenant_id for t in tenants if t.status == "active" and t.has_active_connection]
    if include:
        ids = [i for i in ids if i in set(include)]
    return [i for i in ids if i not in set(exclude)]


def created_at(conn: psycopg.Connection, tenant_id: str) -> datetime | None:
    """When the tenant was created; None for an unknown tenant."""
    row = conn.execute("SELECT created_at FROM tenants WHERE tenant_id = %s", (tenant_id,)).fetchone()
    return row[0] if row is not None else None
