"""One bounded, secret-safe way to call a vendor's JSON API.

`request_json` is what the Tavily, Lusha and ZeroBounce clients send through. Every call has a
timeout; 429, 5xx, timeouts and connection errors are retried a bounded number of times with
exponential backoff and jitter. A vendor's `Retry-After` wins and is honoured as sent, up to the
policy's `max_retry_after_s` (set per vendor at least to its documented block, see
`leadgen_core.vendors.limits.RETRY_AFTER_MAX_S`); a longer one is not slept through: the call
gives up at once with `RateLimited(retry_after=...)` so the caller can reschedule. So does a wait (a
Retry-After or a backoff) that would end past the caller's `deadline` (the stage's time budget,
`time.monotonic()` based): the item fails retryable instead of sleeping past the night's SLA.
The final failure becomes
one branch of the `VendorError` tree. Exception messages name the vendor, the method and the
path only: never the query string (ZeroBounce puts its key there) and never a configured secret.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpx

from leadgen_core.errors import (
    BudgetExhausted,
    ChargeUncertain,
    RateLimited,
    VendorAuthError,
    VendorResponseError,
    VendorUnavailable,
)
from leadgen_core.redaction import REDACTED, redact
from leadgen_core.retry_after import parse_retry_after, retry_after_seconds
from leadgen_core.retry_policy import MAX_RETRY_AFTER_S, RetryPolicy
from leadgen_core.vendors.aio_transport import AioClient, Answer, send_direct

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RetryPolicy",
    "expect_dict",
    "expect_list",
    "parse_retry_after",
    "request_json",
    "safe_url",
]

DEFAULT_TIMEOUT_S = 20.0
MAX_ATTEMPTS_CAP = 10
ERROR_SNIPPET_CHARS = 160
SECRET_QUERY_PARAMS = ("api_key", "apikey", "key", "token", "access_token")

log = logging.getLogger(__name__)


def safe_url(url: httpx.URL | str) -> str:
    """A URL with the values of credential-like query parameters replaced (for logs)."""
    parsed = httpx.URL(str(url))
    if not parsed.query:
        return str(parsed)
    params = [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in parsed.params.multi_items()]
    return str(parsed.copy_with(params=params))


class _RedactQueryFilter(logging.Filter):
    """httpx logs every request URL at INFO; ZeroBounce's key travels in that URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(safe_url(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _install_httpx_log_redaction() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQueryFilter) for f in logger.filters):
        logger.addFilter(_RedactQueryFilter())


_install_httpx_log_redaction()


def _snippet(response: httpx.Response | Answer, secrets: Iterable[str]) -> str:
    text = " ".join(response.text[:ERROR_SNIPPET_CHARS].split())
    return redact(text, secrets)


async def request_json(
    client: httpx.AsyncClient,
    *,
    vendor: str,
    method: str,
    url: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    secrets: Iterable[str] = (),
    billable: bool = False,
    deadline: float | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """Send one logical request (with bounded retries) and return (status, decoded JSON body).

    Raises RateLimited, VendorUnavailable, VendorAuthError (401/403), BudgetExhausted (402) or
    VendorResponseError (other 4xx, or a 2xx body that is not JSON). A BILLABLE request is never
    re-sent once it may have reached the vendor unanswered (a read timeout, a dropped connection):
    that raises ChargeUncertain at once, since a blind re-send can pay twice. Requests that never
    left (connect and pool timeouts, refused connections) and answered failures (429, 5xx) are
    retried as usual.
    """
    policy = retry or RetryPolicy()
    attempts = max(1, min(policy.max_attempts, MAX_ATTEMPTS_CAP))
    secrets = tuple(secrets)
    target = f"{method.upper()} {urlsplit(url).path}"
    last_problem = "no attempt made"
    retry_after: float | None = None
    # an AioClient's requests go straight through its aiohttp wire (see `aio_transport.send_direct`)
    direct = client if isinstance(client, AioClient) and client.wire is not None else None
    for attempt in range(1, attempts + 1):
        retry_after = None
        try:
            response: httpx.Response | Answer
            if direct is not None:
                response = await send_direct(direct, method, url, timeout_s=timeout_s, **kwargs)
            else:
                response = await client.request(method, url, timeout=httpx.Timeout(timeout_s), **kwargs)
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            last_problem = f"could not connect within {timeout_s:g}s"
        except (httpx.TimeoutException, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            last_problem = f"timed out after {timeout_s:g}s" if isinstance(exc, httpx.TimeoutException) else (
                f"connection error ({type(exc).__name__})"
            )  # fmt: skip
            if billable:
                raise ChargeUncertain(vendor, f"{target}: {last_problem} after sending; not re-sent") from None
        except httpx.TransportError as exc:
            # the exception text can carry the full URL, so only its class name is kept
            last_problem = f"connection error ({type(exc).__name__})"
        else:
            status = response.status_code
            if status < 300:
                try:
                    return status, response.json()
                except ValueError:
                    raise VendorResponseError(vendor, f"{target}: HTTP {status} body is not valid JSON") from None
            if status in (401, 403):
                raise VendorAuthError(vendor, f"{target}: HTTP {status}, key missing or rejected")
            if status == 402:
                raise BudgetExhausted(vendor, f"{target}: HTTP 402, vendor account is out of credits")
            if status == 429:
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
                last_problem = "HTTP 429 rate limited"
                if retry_after is not None and retry_after > policy.max_retry_after_s:
                    # waiting less than asked only earns another 429 (or a longer block): give up now
                    message = f"{target}: HTTP 429, vendor asks to wait {retry_after:.0f}s"
                    raise RateLimited(vendor, message, retry_after=retry_after)
            elif status >= 500:
                last_problem = f"HTTP {status}"
            else:
                raise VendorResponseError(vendor, f"{target}: HTTP {status} {_snippet(response, secrets)}")
        if attempt == attempts:
            break
        delay = retry_after if retry_after is not None else policy.backoff(attempt)
        if deadline is not None and time.monotonic() + delay > deadline:
            left = max(0.0, deadline - time.monotonic())
            budget = f"a {delay:.0f}s wait would outlast the stage's time budget ({left:.0f}s left)"
            message = f"{target}: {last_problem}; {budget}"
            if last_problem.startswith("HTTP 429"):
                raise RateLimited(vendor, message, retry_after=retry_after)
            raise VendorUnavailable(vendor, message)
        log.warning("%s %s: %s; retry %d/%d in %.2fs", vendor, target, last_problem, attempt, attempts - 1, delay)
        await asyncio.sleep(delay)
    message = f"{target}: {last_problem} (gave up after {attempts} attempts)"
    if last_problem.startswith("HTTP 429"):
        raise RateLimited(vendor, message, retry_after=retry_after)
    raise VendorUnavailable(vendor, message)


def expect_dict(vendor: str, body: Any, *, what: str) -> dict[str, Any]:
    """The body as a JSON object, or VendorResponseError."""
    if not isinstance(body, dict):
        raise VendorResponseError(vendor, f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def expect_list(vendor: str, value: Any, *, what: str) -> list[Any]:
    """A JSON array field (None counts as empty), or VendorResponseError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise VendorResponseError(vendor, f"{what}: expected a JSON array, got {type(value).__name__}")
    return value
