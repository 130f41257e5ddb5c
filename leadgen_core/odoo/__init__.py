"""Odoo integration: clients for JSON-RPC and JSON-2, and idempotent sync of companies, contacts, leads."""

from __future__ import annotations

from leadgen_core.odoo.client import (
    OdooClient,
    OdooResponseTooLarge,
    OdooServerError,
    OdooWriteUncertain,
)
from leadgen_core.odoo.factory import PROTOCOLS, OdooProtocol, make_client
from leadgen_core.odoo.json2 import Json2Client
from leadgen_core.odoo.jsonrpc import JsonRpcClient
from leadgen_core.odoo.sync import (
    LEAD_KEY_FIELD,
    SyncOutcome,
    lead_key,
    upsert_company,
    upsert_contact,
    upsert_lead,
)
from leadgen_core.retry_policy import RetryPolicy

__all__ = [
    "LEAD_KEY_FIELD",
    "PROTOCOLS",
    "Json2Client",
    "JsonRpcClient",
    "OdooClient",
    "OdooProtocol",
    "OdooResponseTooLarge",
    "OdooServerError",
    "OdooWriteUncertain",
    "RetryPolicy",
    "SyncOutcome",
    "lead_key",
    "make_client",
    "upsert_company",
    "upsert_contact",
    "upsert_lead",
]
