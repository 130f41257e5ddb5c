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
Polls are spaced at least `poll_interval_s` apart and capped at `max_polls`; each request goes
through `acra.api.get_with_retries` (the shared RetryPolicy; 429 honours Retry-After up to
RETRY_AFTER_MAX_S["datagov"]; 5xx, timeouts and connection errors back off). Failures surface
as RateLimited / VendorUnavailable / VendorAuthError / VendorResponseError (vendor "acra").
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

from leadgen_core.acra.api import VENDOR, get_with_retries, retry_policy
from leadgen_core.errors import VendorResponseError, VendorUnavailable

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


def _data(response: httpx.Response) -> dict[str, Any]:
    """The `data` object of a `code: 0` answer; ValueError (retried as malformed) otherwise."""
    try:
        body = response.json()
        data = body["data"] if isinstance(body, dict) and body.get("code") == 0 else None
    except KeyError:
        data = None
    if not isinstance(data, dict):
        raise ValueError("answer without code=0 and a data object")
    return data


async def _get_json(client: httpx.AsyncClient, url: str, *, where: str, options: DownloadOptions) -> dict[str, Any]:
    """One API call with bounded retries (acra.api's one loop); the answer's `data` object."""
    return await get_with_retries(
        client,
        url,
        where=where,
        policy=retry_policy(options.max_attempts, options.backoff_s),
        parse=_data,
        describe=lambda response: f"HTTP {response.status_code} {_error_text(response)}".strip(),
        timeout_s=options.timeout_s,
        headers=_headers(options),
    )


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
