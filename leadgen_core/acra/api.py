"""Reading an ACRA dataset page by page from the CKAN `datastore_search` API of data.gov.sg.

`GET <api_url>?resource_id=<id>&limit=<n>&offset=<k>[&q=<text>]` answers
`{"success": true, "result": {"records": [...], "total": N, "fields": [...], "_links": {...}}}`.
Paging advances the offset by the records actually received (a server may cap `limit` below what
was asked), until `total` records were read, an empty page arrives, or `max_pages` is reached.

data.gov.sg allows 4 datastore calls per 10 s, and 5 API calls a minute, without an API key
(guide.data.gov.sg, api-overview/api-rate-limits and dataset-apis/download-dataset) and answers
429 when that is exceeded: paging stays for small or filtered (`q`) fetches; a whole dataset
comes through the download API (download.py). Every call has a timeout; 429, 5xx, timeouts,
connection errors and unparseable bodies are retried by `get_with_retries` (the one loop of both
APIs) under the shared `RetryPolicy` (bounded, jittered exponential backoff), honouring
`Retry-After` on 429 up to RETRY_AFTER_MAX_S["datagov"]. When the attempts run out the caller
gets `RateLimited` or `VendorUnavailable` (vendor "acra"); a 4xx answer other than 429 is not
retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeVar

import httpx

from leadgen_core.errors import RateLimited, VendorAuthError, VendorResponseError, VendorUnavailable
from leadgen_core.retry_after import retry_after_seconds
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.limits import RETRY_AFTER_MAX_S

VENDOR: Final = "acra"
DEFAULT_TIMEOUT_S: Final = 30.0
DEFAULT_MAX_ATTEMPTS: Final = 6
DEFAULT_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 30.0
# A Retry-After longer than this is not slept through: the caller reschedules instead.
MAX_RETRY_AFTER_S: Final = RETRY_AFTER_MAX_S["datagov"]

ProgressCallback = Callable[[int, int], None]
T = TypeVar("T")


def retry_policy(max_attempts: int, backoff_s: float) -> RetryPolicy:
    """data.gov.sg's retry policy: the shared RetryPolicy with ACRA's attempts, backoff and Retry-After cap."""
    return RetryPolicy(
        max_attempts=max_attempts,
        base_backoff_s=backoff_s,
        max_backoff_s=MAX_BACKOFF_S,
        max_retry_after_s=MAX_RETRY_AFTER_S,
    )


async def get_with_retries(
    client: httpx.AsyncClient,
    url: str,
    *,
    where: str,
    policy: RetryPolicy,
    parse: Callable[[httpx.Response], T],
    describe: Callable[[httpx.Response], str],
    timeout_s: float,
    **kwargs: Any,
) -> T:
    """One data.gov.sg GET with POLICY's bounded retries: the one loop of the datastore and download APIs.

    PARSE turns a 2xx answer into the result (a ValueError: a malformed body, retried); 429, 5xx,
    timeouts and connection errors are retried after the policy's backoff, or after Retry-After
    when the server sent one (never sooner than asked; later if the backoff has grown past it,
    since a fixed Retry-After shorter than the server's window would burn every attempt). A
    Retry-After beyond the policy's maximum gives up at once with RateLimited; 401/403 raise
    VendorAuthError, other 4xx VendorResponseError (with DESCRIBE's text), neither retried.
    """
    last_kind, last_detail, last_retry_after = "unavailable", "no attempt made", None
    attempts = 0
    for attempt in range(1, policy.max_attempts + 1):
        attempts = attempt
        delay = policy.backoff(attempt)
        try:
            response = await client.get(url, timeout=timeout_s, **kwargs)
        except httpx.TimeoutException:
            last_kind, last_detail = "unavailable", f"timed out after {timeout_s:g}s"
        except httpx.TransportError as exc:
            last_kind, last_detail = "unavailable", f"connection failed ({type(exc).__name__})"
        else:
            status = response.status_code
            if status == 429:
                last_retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                last_kind, last_detail = "rate", "429 Too Many Requests"
                if last_retry_after is not None:
                    if last_retry_after > policy.max_retry_after_s:
                        break
                    delay = max(delay, last_retry_after)
            elif status >= 500:
                last_kind, last_detail = "unavailable", f"HTTP {status}"
            elif status in (401, 403):
                raise VendorAuthError(
                    VENDOR, f"{where}: HTTP {status}, the API key (ACRA_API_KEY) is missing or rejected"
                )
            elif status >= 400:
                raise VendorResponseError(VENDOR, f"{where}: {describe(response)}")
            else:
                try:
                    return parse(response)
                except ValueError as exc:  # truncated or foreign body: usually transient, retried
                    last_kind, last_detail = "malformed", str(exc)[:300]
        if attempt < policy.max_attempts:
            await asyncio.sleep(delay)
    message = f"{where}: {last_detail} after {attempts} attempt(s)"
    if last_kind == "rate":
        raise RateLimited(VENDOR, message, retry_after=last_retry_after)
    if last_kind == "malformed":
        raise VendorResponseError(VENDOR, message)
    raise VendorUnavailable(VENDOR, message)


def _ckan_error(response: httpx.Response) -> str:
    """CKAN's error object as one line ("Not Found Error: Not found: Resource ..."), else the status."""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        error = None
    if isinstance(error, dict):
        kind = error.get("__type", "error")
        detail = error.get("message") or {k: v for k, v in error.items() if k != "__type"}
        return f"{kind}: {detail}"[:300]
    return f"HTTP {response.status_code}"


def _parse_result(response: httpx.Response, where: str) -> dict[str, Any]:
    """The `result` object of a successful answer; raises ValueError when the body is not one."""
    body = response.json()
    if not isinstance(body, dict) or body.get("success") is not True:
        raise ValueError(f"{where}: answer without success=true")
    result = body.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("records"), list):
        raise ValueError(f"{where}: answer without result.records")
    if not all(isinstance(r, dict) for r in result["records"]):
        raise ValueError(f"{where}: a record is not an object")
    return result


async def _get_page(
    client: httpx.AsyncClient,
    *,
    api_url: str,
    params: dict[str, str | int],
    timeout_s: float,
    max_attempts: int,
    backoff_s: float,
) -> dict[str, Any]:
    where = f"datastore_search resource {params['resource_id']} offset {params['offset']}"
    return await get_with_retries(
        client,
        api_url,
        where=where,
        policy=retry_policy(max_attempts, backoff_s),
        parse=lambda response: _parse_result(response, where),
        describe=_ckan_error,
        timeout_s=timeout_s,
        params=params,
    )


async def fetch_datastore(
    *,
    api_url: str,
    resource_id: str,
    page_size: int,
    max_pages: int,
    http: httpx.AsyncClient | None = None,
    on_page: ProgressCallback | None = None,
    q: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_s: float = DEFAULT_BACKOFF_S,
    api_key: str | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every record of RESOURCE_ID, in server order, reading at most MAX_PAGES pages.

    `on_page(fetched, total)` runs after each page (total is the server's count, or `fetched`
    when the server gives none). Pass `http` to reuse a client (headers such as an API key live
    there); otherwise one is opened and closed here, sending API_KEY as `x-api-key` when given.
    """
    if page_size < 1 or max_pages < 1 or max_attempts < 1:
        raise ValueError("page_size, max_pages and max_attempts must be >= 1")
    client = http or httpx.AsyncClient(timeout=timeout_s, headers={"x-api-key": api_key} if api_key else None)
    try:
        offset = 0
        for _page in range(max_pages):
            params: dict[str, str | int] = {"resource_id": resource_id, "limit": page_size, "offset": offset}
            if q:
                params["q"] = q
            result = await _get_page(
                client,
                api_url=api_url,
                params=params,
                timeout_s=timeout_s,
                max_attempts=max_attempts,
                backoff_s=backoff_s,
            )
            records: list[dict[str, Any]] = result["records"]
            raw_total = result.get("total")
            total = raw_total if isinstance(raw_total, int) and not isinstance(raw_total, bool) else None
            offset += len(records)
            if on_page is not None:
                on_page(offset, total if total is not None else offset)
            for record in records:
                yield record
            if not records or (total is not None and offset >= total):
                return
            if total is None and len(records) < page_size:
                return  # without a total, a short page is the last one
    finally:
        if http is None:
            await client.aclose()
