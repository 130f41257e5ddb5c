"""The Odoo client over the JSON-2 API of Odoo 19+ (`POST /json/2/<model>/<method>`).

Each call carries `Authorization: bearer <api key>` (and `X-Odoo-Database` when a database is
named) and a JSON object of the method's named arguments, plus `ids` for record methods. The
answer is the method's JSON result; errors are 4xx/5xx with `{name, message, arguments,
context, debug}` and raise `OdooServerError` (retried only when the transport deems them passing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from leadgen_core.errors import OdooError
from leadgen_core.odoo.client import (
    DEFAULT_DEADLINE_S,
    DEFAULT_TIMEOUT_S,
    MAX_RESPONSE_BYTES,
    Domain,
    HttpResult,
    OdooServerError,
    Transport,
    created_ids,
)
from leadgen_core.retry_policy import RetryPolicy

JSON2_PATH = "/json/2"


class Json2Client:
    """An `OdooClient` over JSON-2."""

    protocol = "json2"

    def __init__(
        self,
        *,
        base_url: str,
        db: str | None,
        api_key: str,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        deadline_s: float = DEFAULT_DEADLINE_S,
        tenant: str | None = None,
        allow_private_addresses: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.db = db
        self._api_key = api_key
        self._transport = Transport(
            http=http,
            timeout_s=timeout_s,
            retry=retry,
            secrets=(api_key,),
            max_response_bytes=max_response_bytes,
            deadline_s=deadline_s,
            tenant=tenant,
            allow_private_addresses=allow_private_addresses,
        )

    def __repr__(self) -> str:
        return f"Json2Client(base_url={self.base_url!r}, db={self.db!r}, api_key='***')"

    async def call(
        self,
        model: str,
        method: str,
        *,
        ids: Sequence[int] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Call MODEL.METHOD with named PARAMS (and IDS for record methods); returns the JSON result."""
        body: dict[str, Any] = dict(params or {})
        if ids:
            body["ids"] = list(ids)
        headers = {"Authorization": f"bearer {self._api_key}"}
        if self.db:
            headers["X-Odoo-Database"] = self.db
        what = f"{model}.{method}"
        url = f"{self.base_url}{JSON2_PATH}/{model}/{method}"
        res = await self._transport.post(url, body, headers=headers, idempotent=idempotent, what=what)
        if 200 <= res.status < 300:
            return res.body
        raise self._error(what, res)

    async def search_read(
        self, model: str, domain: Domain, *, fields: Sequence[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"domain": domain, "fields": list(fields)}
        if limit is not None:
            params["limit"] = limit
        result = await self.call(model, "search_read", params=params)
        if not isinstance(result, list):
            raise OdooError(f"odoo {model}.search_read: malformed result")
        return result

    async def field_names(self, model: str) -> set[str]:
        result = await self.call(model, "fields_get", params={"attributes": ["type"]})
        if not isinstance(result, dict):
            raise OdooError(f"odoo {model}.fields_get: malformed result")
        return set(result)

    async def create(self, model: str, vals: Mapping[str, Any]) -> int:
        result = await self.call(model, "create", params={"vals_list": [dict(vals)]}, idempotent=False)
        # JSON-2 returns a recordset as its ids, so one created record comes back as [id]
        if not isinstance(result, list) or len(result) != 1 or not isinstance(result[0], int):
            raise OdooError(f"odoo {model}.create: malformed result")
        return int(result[0])

    async def create_many(self, model: str, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
        if not vals_list:
            return []
        result = await self.call(model, "create", params={"vals_list": [dict(v) for v in vals_list]}, idempotent=False)
        return created_ids(model, result, len(vals_list))

    async def write(self, model: str, ids: Sequence[int], *, vals: Mapping[str, Any]) -> bool:
        return bool(await self.call(model, "write", ids=ids, params={"vals": dict(vals)}))

    async def close(self) -> None:
        await self._transport.close()

    def _error(self, what: str, res: HttpResult) -> OdooServerError:
        body = res.body if isinstance(res.body, dict) else {}
        name = body.get("name") if isinstance(body.get("name"), str) else None
        message = str(body.get("message") or "")
        text = f"odoo {what}: HTTP {res.status}"
        if name:
            text += f" {name}: {message}"
        return OdooServerError(self._transport.redact(text), odoo_name=name, http_status=res.status)
