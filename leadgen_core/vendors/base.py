"""What every vendor client shares: its connection pool, credentials, timeout and retry policy.

Subclasses name their vendor and how they authenticate (`_auth_headers`); `_request` sends one
call through `request_json` (bounded retries, Retry-After, the error tree) with the key listed
as a secret, so it is redacted from anything the call may raise. `pace`, when set, is awaited
before every request: a shared rate limiter's `acquire`, so one slot is taken per request the
client really sends (a lookup that needs one request takes one slot, not two). `deadline`, when
set, is the stage's time budget: a retry wait that would end past it is not slept through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Self

import httpx

from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.http import expect_dict, request_json


class VendorClient:
    """Base of the async vendor clients; pass `http` to share a connection pool, else it owns one."""

    VENDOR: ClassVar[str] = "vendor"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None
        self._timeout_s = timeout_s
        self._retry = retry
        self.pace: Callable[[], Awaitable[None]] | None = None
        # time.monotonic() by which the caller's stage must be done: no retry waits past it
        self.deadline: float | None = None

    def _auth_headers(self) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(
        self, method: str, path: str, *, base_url: str | None = None, timeout_s: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One call to PATH on the client's host (or BASE_URL: a vendor's second host)."""
        if self.pace is not None:
            await self.pace()
        headers = {**self._auth_headers(), **kwargs.pop("headers", {})}
        _, payload = await request_json(
            self._http,
            vendor=self.VENDOR,
            method=method,
            url=f"{base_url or self._base}{path}",
            timeout_s=timeout_s or self._timeout_s,
            retry=self._retry,
            secrets=(self._key,),
            deadline=self.deadline,
            headers=headers,
            **kwargs,
        )
        return expect_dict(self.VENDOR, payload, what=path)
