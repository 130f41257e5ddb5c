"""A tenant's Odoo connection: the directory row, and its secret read from the environment at run time.

The database holds only `secret_ref` = `env:VARIABLE`; the secret itself is looked up in the run
worker's environment when the sync starts and is never stored, logged or put in an error text:
a missing secret is reported by the variable's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import psycopg

from leadgen_core.errors import ConfigError
from leadgen_core.odoo import OdooProtocol
from leadgen_core.secrets import SCHEME, check_secret_ref, resolve_secret_ref
from leadgen_core.urls import check_odoo_url

CONNECTION_SQL = """
SELECT base_url, db_name, protocol, login, secret_ref, active FROM odoo_connections WHERE tenant_id = %s
"""


@dataclass(frozen=True)
class OdooConnection:
    """Where a tenant's Odoo is and which environment variable holds its secret (never the secret)."""

    tenant_id: str
    base_url: str
    db_name: str
    protocol: OdooProtocol
    login: str
    secret_env: str

    def secret(self, environ: Mapping[str, str]) -> str:
        """The secret from the environment, under the secret-reference rule checked again here;
        ConfigError naming the variable (only) when it is refused or unset."""
        return resolve_secret_ref(
            f"{SCHEME}:{self.secret_env}", environ, owner=f"the Odoo secret of tenant {self.tenant_id}"
        )


def load_connection(conn: psycopg.Connection, *, tenant_id: str) -> OdooConnection:
    row = conn.execute(CONNECTION_SQL, (tenant_id,)).fetchone()
    if row is None or not row[5]:
        raise ConfigError(f"tenant {tenant_id} has no active Odoo connection: run `leadgen odoo connect`")
    base_url, db_name, protocol, login, secret_ref, _ = row
    try:
        var = check_secret_ref(str(secret_ref))
    except ConfigError as exc:
        # A reference written before the rule (or by hand) is refused before any request is made.
        raise ConfigError(f"the Odoo secret of tenant {tenant_id}: {exc}") from None
    try:
        base_url = check_odoo_url(str(base_url))
    except ConfigError as exc:  # a row written before the rule, or by hand: no request is made
        raise ConfigError(f"the Odoo URL of tenant {tenant_id}: {exc}") from None
    return OdooConnection(tenant_id, str(base_url), str(db_name), cast(OdooProtocol, protocol), str(login), var)
