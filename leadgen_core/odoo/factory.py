"""Build the Odoo client for a protocol name, as settings and tenants spell it."""

from __future__ import annotations

from typing import Literal

import httpx

from leadgen_core.errors import ConfigError
from leadgen_core.odoo.client import DEFAULT_TIMEOUT_S, OdooClient
from leadgen_core.odoo.json2 import Json2Client
from leadgen_core.odoo.jsonrpc import JsonRpcClient
from leadgen_core.retry_policy import RetryPolicy

OdooProtocol = Literal["jsonrpc", "json2"]
PROTOCOLS: tuple[OdooProtocol, ...] = ("jsonrpc", "json2")


def make_client(
    *,
    protocol: OdooProtocol,
    base_url: str,
    db: str,
    login: str,
    secret: str,
    http: httpx.AsyncClient | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    tenant: str | None = None,
    allow_private_addresses: bool = True,
) -> OdooClient:
    """A client for PROTOCOL; SECRET is the password (JSON-RPC) or the API key (both protocols).

    JSON-2 identifies the user by the API key alone, so LOGIN only serves JSON-RPC. TENANT, when
    given, is named in the client's retry log lines. Without HTTP, the client's own connections are
    checked by `leadgen_core.odoo.guard` (ALLOW_PRIVATE_ADDRESSES: ODOO_ALLOW_PRIVATE_ADDRESSES).
    """
    if protocol == "jsonrpc":
        return JsonRpcClient(
            base_url=base_url,
            db=db,
            login=login,
            password=secret,
            http=http,
            timeout_s=timeout_s,
            retry=retry,
            tenant=tenant,
            allow_private_addresses=allow_private_addresses,
        )
    if protocol == "json2":
        return Json2Client(
            base_url=base_url,
            db=db or None,
            api_key=secret,
            http=http,
            timeout_s=timeout_s,
            retry=retry,
            tenant=tenant,
            allow_private_addresses=allow_private_addresses,
        )
    raise ConfigError(f"unknown Odoo protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
