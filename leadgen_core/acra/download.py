"""Fetching a whole ACRA dataset as one CSV through data.gov.sg's download API.

    GET <base>/v1/public/api/datasets/<id>/initiate-download   -> {"code": 0, "data": {"message"}}
    GET <base>/v1/public/api/datasets/<id>/poll-download       -> {"code": 0, "data": {"status", "url"}}
    GET <data.url>                                             -> the CSV of the whole dataset

(guide.data.gov.sg, developer-guide/dataset-apis/download-dataset.) A registry of a million rows
arrives in three requests instead of 200+ datastore_search pages, which at the keyless quota of
5 requests a minute would take the whole night's slack. The CSV is streamed to a temporary file,
then read by the same parser as `leadgen acra load` (csv_source.iter_csv), so both paths
validate and quarantine identically.

`x-api-key` is sent when an API key is given; it never appears in an exception or a log line.
Polls are spaced at least `poll_interval_s` apart and capped at `max_polls`; 429 honours
Retry-After (up to MAX_RETRY_AFTER_S), 5xx, timeouts and connection errors back off, each
request a bounded number of times. Failures surface as RateLimited / VendorUnavailable /
VendorAuthError / VendorResponseError (vendor "acra").
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from leadgen_core.acra.api import MAX_RETRY_AFTER_S, VENDOR, backoff_delay
from leadgen_core.errors import RateLimited, VendorAuthError, VendorResponseError, VendorUnavailable
from leadgen_core.retry_after import retry_after_seconds

DATASETS_PATH: Final = "/v1/public/api/datasets"
SUCCESS: Final = "DOWNLOAD_SUCCESS"
FAILED_STATES: Final = frozenset({"DOWNLOAD_FAILED", "FAILED"})
DEFAULT_TIMEOUT_S: Final = 60.0
# A CSV of the whole registry is a few hundred MB: the read timeout is per chunk, not per file.
CSV_CHUNK_BYTES: Final = 1 << 20
MAX_CSV_BYTES: Final = 4 << 30
DEFAULT_MAX_ATTEMPTS: Final = 5


@dataclass(frozen=True)
class DownloadOptions:
    base_url: str
    api_key: str | None = None
    poll_interval_s: float = 3.0
    max_polls: int = 6
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_s: float = 1.0


def _headers(options: DownloadOptions) -> dict[str, str]:
    return {"x-api-key": options.api_key} if options.api_key else {}


async def _get_json(client: httpx.AsyncClient, url: str, *, where: str, options: DownloadOptions) -> dict[str, Any]:
    """One API call with bounded retries; the answer's `data` object."""
    last_kind, last_detail, last_retry_after = "unavailable", "no attempt made", None
    for attempt in range(1, options.max_attempts + 1):
        delay = backoff_delay(attempt, options.backoff_s)
        try:
            response = await client.get(url, headers=_headers(options), timeout=options.timeout_s)
        except httpx.TimeoutException:
            last_kind, last_detail = "unavailable", f"timed out after {options.timeout_s:g}s"
        except httpx.TransportError as exc:
            last_kind, last_detail = "unavailable", f"connection failed ({type(exc).__name__})"
        else:
            status = response.status_code
            if status == 429:
                last_kind, last_detail = "rate", "429 Too Many Requests"
                last_retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                if last_retry_after is not None:
                    if last_retry_after > MAX_RETRY_AFTER_S:
                        break
                    delay = max(delay, last_retry_after)
            elif status >= 500:
                last_kind, last_detail = "unavailable", f"HTTP {status}"
            elif status in (401, 403):
                raise VendorAuthError(VENDOR, f"{where}: HTTP {status}, the API key (ACRA_API_KEY) is rejected")
            elif status >= 400:
                raise VendorResponseError(VENDOR, f"{where}: HTTP {status} {_error_text(response)}")
            else:
                try:
                    body = response.json()
                    data = body["data"] if isinstance(body, dict) and body.get("code") == 0 else None
                except (ValueError, KeyError):
                    data = None
                if isinstance(data, dict):
                    return data
                last_kind, last_detail = "malformed", "answer without code=0 and a data object"
        if attempt < options.max_attempts:
            await asyncio.sleep(delay)
    message = f"{where}: {last_detail} after {options.max_attempts} attempt(s) at most"
    if last_kind == "rate":
        raise RateLimited(VENDOR, message, retry_after=last_retry_after)
    if last_kind == "malformed":
        raise VendorResponseError(VENDOR, message)
    raise VendorUnavailable(VENDOR, message)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("errorMsg") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""


async def _csv_url(client: httpx.AsyncClient, dataset_id: str, options: DownloadOptions) -> str:
    base = f"{options.base_url.rstrip('/')}{DATASETS_PATH}/{dataset_id}"
    await _get_json(client, f"{base}/initiate-download", where=f"initiate-download {dataset_id}", options=options)
    for _poll in range(options.max_polls):
        await asyncio.sleep(options.poll_interval_s)
        data = await _get_json(client, f"{base}/poll-download", where=f"poll-download {dataset_id}", options=options)
        status = str(data.get("status", ""))
        if status == SUCCESS and isinstance(data.get("url"), str):
            return str(data["url"])
        if status in FAILED_STATES:
            raise VendorUnavailable(VENDOR, f"poll-download {dataset_id}: data.gov.sg reports {status}")
    raise VendorUnavailable(
        VENDOR, f"poll-download {dataset_id}: not ready after {options.max_polls} polls (ACRA_DOWNLOAD_MAX_POLLS)"
    )


async def _save_csv(client: httpx.AsyncClient, url: str, dest: Path, *, dataset_id: str, timeout_s: float) -> int:
    # The pre-signed file URL takes no API key: sending it there would leak it to the object store.
    written = 0
    try:
        async with client.stream("GET", url, timeout=timeout_s) as response:
            if response.status_code != 200:
                raise VendorUnavailable(VENDOR, f"CSV of {dataset_id}: HTTP {response.status_code}")
            with open(dest, "wb") as handle:
                async for chunk in response.aiter_bytes(CSV_CHUNK_BYTES):
                    written += len(chunk)
                    if written > MAX_CSV_BYTES:
                        raise VendorResponseError(VENDOR, f"CSV of {dataset_id}: larger than {MAX_CSV_BYTES} bytes")
                    handle.write(chunk)
    except httpx.TransportError as exc:  # timeouts included
        raise VendorUnavailable(VENDOR, f"CSV of {dataset_id}: {type(exc).__name__}") from exc
    return written


async def download_csv(
    dataset_id: str, dest: Path, *, options: DownloadOptions, http: httpx.AsyncClient | None = None
) -> int:
    """Download DATASET_ID's whole CSV into DEST (bytes written): initiate, poll, fetch."""
    client = http or httpx.AsyncClient(timeout=options.timeout_s)
    try:
        url = await _csv_url(client, dataset_id, options)
        return await _save_csv(client, url, dest, dataset_id=dataset_id, timeout_s=options.timeout_s)
    finally:
        if http is None:
            await client.aclose()


@contextlib.contextmanager
def scratch_csv(dataset_id: str) -> Iterator[Path]:
    """A temporary file for one dataset's CSV, removed afterwards whatever happens."""
    with tempfile.TemporaryDirectory(prefix="leadgen-acra-") as folder:
        yield Path(folder) / f"{dataset_id}.csv"
