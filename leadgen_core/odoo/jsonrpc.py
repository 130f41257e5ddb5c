"""The Odoo client over JSON-RPC (`POST /jsonrpc`), for Odoo versions before 19 and after.

The login and password (or an API key in the password's place) are sent to
`common.authenticate` once; the uid is cached and every later call is `object.execute_kw`
with `[db, uid, password, model, method, args, kwargs]`. Application errors come back as HTTP 200
with a JSON-RPC `error` object and raise `OdooServerError` at once (they are never retried).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from leadgen_core.errors import OdooError
from leadgen_core.odoo.client import (
    DEFAULT_DEADLINE_S,
    DEFAULT_TIMEOUT_S,
    MAX_RESPONSE_BYTES,
    Domain,
    OdooServerError,
    Transport,
    created_ids,
)
from leadgen_core.retry_policy import RetryPolicy

JSONRPC_PATH = "/jsonrpc"
HTTP_OK = 200


class JsonRpcClient:
    """An `OdooClient` over JSON-RPC."""

    protocol = "jsonrpc"

    def __init__(
        self,
        *,
        base_url: str,
        db: str,
        login: str,
        password: str,
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
        self.login = login
        self._password = password
        self._transport = Transport(
            http=http,
            timeout_s=timeout_s,
            retry=retry,
            secrets=(password,),
            max_response_bytes=max_response_bytes,
            deadline_s=deadline_s,
            tenant=tenant,
            allow_private_addresses=allow_private_addresses,
        )
        self._uid: int | None = None
        self._auth_lock = asyncio.Lock()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"JsonRpcClient(base_url={self.base_url!r}, db={self.db!r}, login={self.login!r}, password='***')"

    @property
    def uid(self) -> int | None:
        return self._uid

    async def version(self) -> dict[str, Any]:
        result = await self._call("common", "version", [], idempotent=True)
        if not isinstance(result, dict):
            raise OdooError("odoo common.version: malformed result")
        return result

    async def authenticate(self) -> int:
        """The uid for the login, from `common.authenticate` the first time, cached after."""
        async with self._auth_lock:  # concurrent first calls must not authenticate twice
            if self._uid is None:
                args = [self.db, self.login, self._password, {}]
                uid = await self._call("common", "authenticate", args, idempotent=True)
                if isinstance(uid, bool) or not isinstance(uid, int):
                    # Odoo answers `false`, not an error, when the login or password is wrong
                    raise OdooServerError(
                        f"odoo common.authenticate: access denied on database {self.db!r}"
                        " (login or password/API key rejected)",
                        odoo_name=None,
                        http_status=HTTP_OK,
                    )
                self._uid = uid
            return self._uid

    async def execute_kw(
        self,
        model: str,
        method: str,
        *,
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        uid = await self.authenticate()
        params = [self.db, uid, self._password, model, method, list(args), dict(kwargs or {})]
        return await self._call("object", "execute_kw", params, idempotent=idempotent, what=f"{model}.{method}")

    async def search_read(
        self, model: str, domain: Domain, *, fields: Sequence[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"fields": list(fields)}
        if limit is not None:
            kwargs["limit"] = limit
        result = await self.execute_kw(model, "search_read", args=[domain], kwargs=kwargs)
        if not isinstance(result, list):
            raise OdooError(f"odoo {model}.search_read: malformed result")
        return result

    async def field_names(self, model: str) -> set[str]:
        result = await self.execute_kw(model, "fields_get", args=[], kwargs={"attributes": ["type"]})
        if not isinstance(result, dict):
            raise OdooError(f"odoo {model}.fields_get: malformed result")
        return set(result)

    async def create(self, model: str, vals: Mapping[str, Any]) -> int:
        result = await self.execute_kw(model, "create", args=[dict(vals)], idempotent=False)
        if isinstance(result, list) and len(result) == 1:
            result = result[0]  # servers that always answer with ids
        if isinstance(result, bool) or not isinstance(result, int):
            raise OdooError(f"odoo {model}.create: malformed result")
        return result

    async def create_many(self, model: str, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
        if not vals_list:
            return []
        # a list of values makes `create` (model_create_multi) answer a list of ids
        result = await self.execute_kw(model, "create", args=[[dict(v) for v in vals_list]], idempotent=False)
        return created_ids(model, result, len(vals_list))

    async def write(self, model: str, ids: Sequence[int], *, vals: Mapping[str, Any]) -> bool:
        return bool(await self.execute_kw(model, "write", args=[list(ids), dict(vals)]))

    async def close(self) -> None:
        await self._transport.close()

    async def _call(self, service: str, method: str, args: list[Any], *, idempotent: bool, what: str = "") -> Any:
        what = what or f"{service}.{method}"
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": next(self._ids),
        }
        res = await self._transport.post(self.base_url + JSONRPC_PATH, payload, idempotent=idempotent, what=what)
        if res.status != HTTP_OK:
            raise OdooServerError(f"odoo {what}: HTTP {res.status}", odoo_name=None, http_status=res.status)
        body = res.body
        if not isinstance(body, dict) or ("result" not in body and "error" not in body):
            raise OdooError(f"odoo {what}: malformed JSON-RPC response")
        if "error" in body:
            error: dict[str, Any] = body["error"] if isinstance(body["error"], dict) else {}
            data: dict[str, Any] = error["data"] if isinstance(error.get("data"), dict) else {}
            name = data.get("name") if isinstance(data.get("name"), str) else None
            message = str(data.get("message") or error.get("message") or "unknown error")
            text = f"odoo {what}: {name}: {message}" if name else f"odoo {what}: {message}"
            raise OdooServerError(self._transport.redact(text), odoo_name=name, http_status=res.status)
        return body["result"]
