"""The Odoo client interface, and the retrying HTTP transport both protocol clients share.

Retries are bounded and only for faults that can pass: connection failures, timeouts, 429 (with
its Retry-After honoured), 5xx other than Odoo's own application errors, and malformed 2xx
bodies. A `create` is not idempotent, so it is retried only when the server surely did not run
it (connection refused, 429, 503); when the request may have been applied (read timeout, 500,
502, 504, a torn body) the transport raises `OdooWriteUncertain` instead, and the sync layer
looks the record up by its key before creating again. Every message goes through `redact`, so a
password or API key echoed by a server never reaches an exception or a log line.

An answer is read as a stream with two bounds besides httpx's per-read timeout: at most
`max_response_bytes` (decoded, so a compressed bomb stops too; a larger Content-Length is refused
before reading) and a total `deadline_s` per attempt, so a server that drips bytes just under the
read timeout cannot hold a worker. Over the cap is final (`OdooResponseTooLarge`, not retried: the
same request would get the same answer); a missed deadline is a timeout like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx

from leadgen_core.errors import OdooAddressForbidden, OdooError
from leadgen_core.odoo.guard import guarded_client, refusal_of
from leadgen_core.redaction import redact
from leadgen_core.retry_after import retry_after_seconds
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.limits import RETRY_AFTER_MAX_S

DEFAULT_TIMEOUT_S = 20.0  # per connect / read / write, as httpx applies it
# The largest answer the sync expects is a lookup of a chunk of companies: ~100 rows of a few
# hundred bytes. 8 MiB leaves wide headroom, and parsing it stays far below a worker's memory.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
DEFAULT_DEADLINE_S = 60.0  # a whole attempt: connect, send, and read the complete answer
USER_AGENT = "leadgen-odoo/1.0"
UNPROCESSED_STATUSES = frozenset({429, 503})  # refused before the call ran: safe to resend anything
TRANSIENT_ODOO_ERRORS = ("psycopg2.", "psycopg.")  # database hiccups inside Odoo may pass on retry

log = logging.getLogger(__name__)

Domain = list[Any]


@runtime_checkable
class OdooClient(Protocol):
    """The calls the sync layer needs; both JSON-RPC and JSON-2 clients implement them."""

    async def search_read(
        self, model: str, domain: Domain, *, fields: Sequence[str], limit: int | None = None
    ) -> list[dict[str, Any]]: ...

    async def create(self, model: str, vals: Mapping[str, Any]) -> int: ...

    async def create_many(self, model: str, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
        """One `create` call for every record of VALS_LIST (all or none); the new ids, in order."""
        ...

    async def write(self, model: str, ids: Sequence[int], *, vals: Mapping[str, Any]) -> bool: ...

    async def field_names(self, model: str) -> set[str]: ...

    async def close(self) -> None: ...


class OdooServerError(OdooError):
    """Odoo answered with an error: `odoo_name` is the Python exception it reported, if any."""

    def __init__(self, message: str, *, odoo_name: str | None, http_status: int, retryable: bool = False) -> None:
        super().__init__(message, retryable=retryable)
        self.odoo_name = odoo_name
        self.http_status = http_status


class OdooResponseTooLarge(OdooError):
    """Odoo's answer was larger than the byte cap; reading stopped there."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class OdooWriteUncertain(OdooError):
    """A write left but its answer was lost: it may or may not have been applied."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


@dataclass(frozen=True)
class HttpResult:
    """A final answer: its status and parsed JSON body (None when the body was not JSON)."""

    status: int
    body: Any


@dataclass(frozen=True)
class _Failure:
    reason: str
    maybe_applied: bool
    retry_after: float | None = None


class _TooLarge(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport:
    """POSTs JSON with bounded retries; owns the httpx client unless one was passed in."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None,
        timeout_s: float,
        retry: RetryPolicy | None,
        secrets: Sequence[str],
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        deadline_s: float = DEFAULT_DEADLINE_S,
        tenant: str | None = None,
        allow_private_addresses: bool = True,
    ) -> None:
        if max_response_bytes < 1 or deadline_s <= 0:
            raise ValueError("the response cap and the deadline must be positive")
        # every connection's addresses checked (leadgen_core.odoo.guard); a client passed in is the caller's
        self._http = http or guarded_client(allow_private=allow_private_addresses)
        self._owns_http = http is None
        self._timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.deadline_s = deadline_s
        self.retry = retry or RetryPolicy(max_retry_after_s=RETRY_AFTER_MAX_S["odoo"])
        self._secrets = tuple(s for s in secrets if s)
        self._for_tenant = f" for tenant {tenant}" if tenant else ""  # a retry line names whose Odoo it is

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def post(
        self, url: str, payload: Any, *, headers: Mapping[str, str] | None = None, idempotent: bool, what: str
    ) -> HttpResult:
        """The first final answer (2xx, 4xx, Odoo application 5xx); raises OdooError when retries run out."""
        attempts = max(1, self.retry.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                outcome = await self._attempt(url, payload, headers)
            except _TooLarge as exc:
                raise OdooResponseTooLarge(self.redact(f"odoo {what}: {exc.reason}")) from None
            if isinstance(outcome, HttpResult):
                return outcome
            if outcome.maybe_applied and not idempotent:
                raise OdooWriteUncertain(self.redact(f"odoo {what}: {outcome.reason}; it may have been applied"))
            if attempt == attempts:
                raise OdooError(self.redact(f"odoo {what}: {outcome.reason} after {attempt} attempts"), retryable=True)
            if outcome.retry_after is not None and outcome.retry_after > self.retry.max_retry_after_s:
                # waiting less than asked only lands inside the block: give up now, retryable later
                message = f"odoo {what}: {outcome.reason}, the server asks to wait {outcome.retry_after:.0f}s"
                raise OdooError(self.redact(message), retryable=True)
            delay = self.retry.delay(attempt, outcome.retry_after)
            log.warning(
                "odoo %s%s: %s; retry %d of %d in %.2fs",
                what, self._for_tenant, outcome.reason, attempt, attempts - 1, delay,
            )  # fmt: skip
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _attempt(self, url: str, payload: Any, headers: Mapping[str, str] | None) -> HttpResult | _Failure:
        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        try:
            async with asyncio.timeout(self.deadline_s):
                status, resp_headers, raw = await self._exchange(url, payload, sent)
        except TimeoutError:
            return _Failure(f"no complete answer within the {self.deadline_s:g} s deadline", maybe_applied=True)
        except httpx.UnsupportedProtocol as exc:
            raise OdooError(f"odoo: unsupported URL scheme ({type(exc).__name__})") from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            refused = refusal_of(exc)
            if refused is not None:  # an address no Odoo may be at: asking again changes nothing
                raise OdooAddressForbidden(f"odoo: {refused}") from None
            return _Failure(f"connection failed ({type(exc).__name__})", maybe_applied=False)
        except httpx.TransportError as exc:
            return _Failure(f"transport error ({type(exc).__name__})", maybe_applied=True)
        try:
            body: Any = json.loads(raw)
            parsed = True
        except (json.JSONDecodeError, UnicodeDecodeError):
            body, parsed = None, False
        if status in UNPROCESSED_STATUSES:
            wait = retry_after_seconds(resp_headers.get("retry-after"))
            return _Failure(f"HTTP {status}", maybe_applied=False, retry_after=wait)
        if status >= 500 and not _is_final_odoo_error(body):
            return _Failure(f"HTTP {status}", maybe_applied=True)
        if 200 <= status < 300 and not parsed:
            return _Failure("malformed JSON body", maybe_applied=True)
        return HttpResult(status, body)

    async def _exchange(self, url: str, payload: Any, headers: Mapping[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """The status, headers and body of one POST, read up to the byte cap."""
        cap = self.max_response_bytes
        async with self._http.stream("POST", url, json=payload, headers=headers, timeout=self._timeout_s) as resp:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise _TooLarge(f"the answer declares {int(declared):,} bytes, over the {cap:,}-byte cap; not read")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _TooLarge(f"the answer exceeded the {cap:,}-byte cap; reading stopped")
                chunks.append(chunk)
            return resp.status_code, resp.headers, b"".join(chunks)


def created_ids(model: str, result: Any, expected: int) -> list[int]:
    """The ids a multi-record `create` answered, checked to be EXPECTED integers."""
    if (
        not isinstance(result, list)
        or len(result) != expected
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in result)
    ):
        raise OdooError(f"odoo {model}.create: malformed result for {expected} records")
    return [int(i) for i in result]


def _is_final_odoo_error(body: Any) -> bool:
    # JSON-2 answers 500 for any uncaught exception, e.g. a ValueError for an unknown field:
    # retrying cannot help, unless the exception came from the database driver
    name = body.get("name") if isinstance(body, dict) else None
    return isinstance(name, str) and not name.startswith(TRANSIENT_ODOO_ERRORS)
