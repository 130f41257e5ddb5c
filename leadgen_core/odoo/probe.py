"""Checking an Odoo connection before it is saved: the server answers as an Odoo, and the login works.

`leadgen odoo connect` calls `probe_odoo` so a typo in the URL, the database or the key shows at
once, as one line, instead of as a failed night. Both checks are read-only: `common.version` over
JSON-RPC (served by every Odoo, whichever protocol the sync uses), then the field list of
`res.partner` through the protocol's own client, which needs a valid login.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from leadgen_core.errors import OdooAddressForbidden, OdooError
from leadgen_core.odoo.factory import OdooProtocol, make_client
from leadgen_core.odoo.guard import guarded_client, refusal_of
from leadgen_core.retry_policy import RetryPolicy

PROBE_TIMEOUT_S = 10.0
PROBE_RETRY = RetryPolicy(max_attempts=2, base_backoff_s=0.2, max_backoff_s=1.0, max_retry_after_s=2.0)


@dataclass(frozen=True)
class OdooProbe:
    server_version: str
    partner_fields: int


def _version_payload() -> dict[str, Any]:
    params = {"service": "common", "method": "version", "args": []}
    return {"jsonrpc": "2.0", "method": "call", "id": 1, "params": params}


async def probe_odoo(
    *,
    protocol: OdooProtocol,
    base_url: str,
    db: str,
    login: str,
    secret: str,
    timeout_s: float = PROBE_TIMEOUT_S,
    allow_private_addresses: bool = True,
) -> OdooProbe:
    """The server's version and the number of `res.partner` fields the login can read; OdooError
    naming what failed (unreachable, refused by the address guard, not an Odoo, or the login refused)."""
    url = base_url.rstrip("/")
    async with guarded_client(allow_private=allow_private_addresses, timeout=timeout_s) as http:
        try:
            resp = await http.post(f"{url}/jsonrpc", json=_version_payload())
            version = str(resp.json()["result"]["server_version"])
        except httpx.HTTPError as exc:
            refused = refusal_of(exc)
            if refused is not None:
                raise OdooAddressForbidden(f"Odoo at {url}: {refused}") from None
            raise OdooError(f"Odoo at {url} is unreachable: {type(exc).__name__}") from None
        except (ValueError, KeyError, TypeError):
            raise OdooError(f"{url} does not answer as an Odoo (no common.version at /jsonrpc)") from None
        client = make_client(
            protocol=protocol, base_url=url, db=db, login=login, secret=secret, http=http, timeout_s=timeout_s,
            retry=PROBE_RETRY,
        )  # fmt: skip
        try:
            fields = await client.field_names("res.partner")
        except OdooAddressForbidden as exc:  # the name answered otherwise this time (rebinding)
            raise OdooAddressForbidden(f"Odoo at {url}: {exc}") from None
        except OdooError as exc:
            raise OdooError(f"Odoo {version} at {url} refused the login {login!r} on database {db!r}: {exc}") from None
        finally:
            await client.close()
    return OdooProbe(server_version=version, partner_fields=len(fields))
