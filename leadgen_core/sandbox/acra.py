"""A simulated data.gov.sg: CKAN `datastore_search` and the download API over a synthetic ACRA registry.

Simulated: the registry (leadgen_core.acra.synth rows, deterministic per seed) and the server.
Real: the HTTP exchange over loopback sockets, CKAN's answer shapes (success/result/records/total/
fields/_links; `{"success": false, "error": {"__type": ...}}` with 404 for an unknown resource and
409 for a bad parameter), `limit`/`offset` paging with a server-side cap on `limit`, a plain `q`
full-text filter, and 429 with Retry-After through FaultConfig.rate_limit_per_s.

The download API (guide.data.gov.sg, developer-guide/dataset-apis/download-dataset):
`GET /v1/public/api/datasets/<id>/initiate-download`, then `.../poll-download` until its
`data.status` is DOWNLOAD_SUCCESS with `data.url`, then a GET of that URL for the CSV of the whole
dataset (ACRA's header and columns; the URL stands for a pre-signed object-store link, so it is
outside the API quota but still in the request log).

In the `realistic` profile the quotas are enforced per caller (an `x-api-key`, or none) and answer
429 with Retry-After; see `acra_quota.py` for the documented numbers. The `demo` profile has no
quota and a download is ready at the first poll.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Mapping
from typing import Any, Final

from leadgen_core.acra.columns import STAGING_COLUMNS
from leadgen_core.acra.synth import generate_rows
from leadgen_core.sandbox.acra_quota import DATASTORE, DOWNLOAD, KeyTier, QuotaBook
from leadgen_core.sandbox.base import FaultConfig, LoggedRequest, SimRequest, SimResponse, SimServer
from leadgen_core.sandbox.profile import DEMO, SandboxProfile

DATASTORE_PATH: Final = "/api/action/datastore_search"
DEFAULT_RESOURCE_ID: Final = "d_acra_sandbox_00000000000000000000"
DEFAULT_LIMIT: Final = 100
# CKAN's ckan.datastore.search.rows_max default: larger limits are silently capped.
ROWS_MAX: Final = 32_000
HELP_URL: Final = "https://data.gov.sg/api/3/action/help_show?name=datastore_search"
DATASETS_PREFIX: Final = "/v1/public/api/datasets/"
FILES_PREFIX: Final = "/files/"
# Not documented: how long data.gov.sg takes to prepare a CSV. A few seconds is what a client must
# be ready to poll through; the realistic profile uses it (scaled by the time scale).
REALISTIC_PREPARE_S: Final = 5.0
IN_PROGRESS: Final = "DOWNLOAD_IN_PROGRESS"
SUCCESS: Final = "DOWNLOAD_SUCCESS"


def _error(status: int, error: dict[str, Any]) -> SimResponse:
    return SimResponse(status, {"help": HELP_URL, "success": False, "error": error})


class AcraSim(SimServer):
    """`GET /api/action/datastore_search` for one resource id holding `rows` synthetic records."""

    name = "acra"

    def __init__(
        self,
        *,
        rows: int = 1_000,
        seed: int = 7,
        resource_id: str = DEFAULT_RESOURCE_ID,
        malformed_rate: float = 0.0,
        rows_max: int = ROWS_MAX,
        faults: FaultConfig | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        api_keys: Mapping[str, KeyTier] | None = None,
        prepare_s: float | None = None,
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.resource_id = resource_id
        self.rows_max = rows_max
        # x-api-key value -> tier ("dev" or "prod"); an unknown key is refused with 401.
        self.api_keys: dict[str, KeyTier] = dict(api_keys or {})
        self.quota = QuotaBook(profile) if profile.realistic else None
        # Seconds a download takes to prepare: none in demo, REALISTIC_PREPARE_S (scaled) in realistic.
        self.prepare_s = (
            prepare_s if prepare_s is not None else (profile.latency(REALISTIC_PREPARE_S) if profile.realistic else 0.0)
        )
        self._downloads: dict[str, float] = {}  # download token -> monotonic time it becomes ready
        self._csv: bytes | None = None
        self._csv_lock = threading.Lock()
        # CKAN numbers rows with an integer _id from 1, in insertion order.
        self.records: list[dict[str, Any]] = [
            {"_id": i, **row}
            for i, row in enumerate(generate_rows(rows, seed=seed, malformed_rate=malformed_rate), start=1)
        ]
        self._filtered: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", DATASTORE_PATH, self._search)
        self.route("GET", DATASETS_PREFIX, self._dataset_api, prefix=True)
        self.route("GET", FILES_PREFIX, self._file, prefix=True)

    def start(self) -> AcraSim:  # narrowed return type, so `with AcraSim(...) as sim` is an AcraSim
        super().start()
        return self

    def __enter__(self) -> AcraSim:
        return self.start()

    @property
    def api_url(self) -> str:
        """What ACRA_API_URL should be set to for clients of this simulator."""
        return f"{self.base_url}{DATASTORE_PATH}"

    def download_path(self, action: str, dataset_id: str | None = None) -> str:
        return f"{DATASETS_PREFIX}{dataset_id or self.resource_id}/{action}"

    def dataset_requests(self, dataset_id: str | None = None) -> list[LoggedRequest]:
        """Every logged request about DATASET_ID: its datastore pages, download API calls and CSV fetches."""
        rid = dataset_id or self.resource_id
        with self._lock:
            return [
                r
                for r in self.log
                if r.path.startswith(f"{DATASETS_PREFIX}{rid}/")
                or r.path.startswith(f"{FILES_PREFIX}{rid}/")
                or (r.path == DATASTORE_PATH and rid in (r.query.get("resource_id") or r.query.get("id") or []))
            ]

    def _caller(self, req: SimRequest) -> KeyTier | SimResponse:
        key = req.header("x-api-key")
        if not key:
            return "none"
        tier = self.api_keys.get(key)
        if tier is None:
            return SimResponse(401, {"code": 401, "data": None, "errorMsg": "Invalid API key"})
        return tier

    def _over_quota(self, req: SimRequest, kind: str) -> SimResponse | None:
        caller = self._caller(req)
        if isinstance(caller, SimResponse):
            return caller
        if self.quota is None:
            return None
        wait = self.quota.take(kind, caller, req.header("x-api-key") or "")
        if wait is None:
            return None
        body = self.rate_limit_body() if kind == DATASTORE else {"code": 429, "data": None, "errorMsg": "Too many"}
        # Fractional seconds, so a time-scaled sandbox does not round a 0.2 s wait up to 1 s.
        return SimResponse(429, body, headers={"Retry-After": f"{max(wait, 0.01):.2f}"})

    def _csv_bytes(self) -> bytes:
        with self._csv_lock:
            if self._csv is None:
                out = io.StringIO(newline="")
                writer = csv.writer(out)
                writer.writerow(STAGING_COLUMNS)
                for record in self.records:
                    writer.writerow(["" if record.get(c) is None else record.get(c) for c in STAGING_COLUMNS])
                self._csv = out.getvalue().encode("utf-8", "surrogateescape")
            return self._csv

    def _dataset_api(self, req: SimRequest) -> SimResponse:
        parts = req.path[len(DATASETS_PREFIX) :].split("/")
        if len(parts) != 2 or parts[1] not in ("initiate-download", "poll-download"):
            return SimResponse(404, {"code": 404, "data": None, "errorMsg": "Not found"})
        dataset_id, action = parts
        refused = self._over_quota(req, DOWNLOAD)
        if refused is not None:
            return refused
        if dataset_id != self.resource_id:
            return SimResponse(404, {"code": 404, "data": None, "errorMsg": f"Dataset {dataset_id} not found"})
        if action == "initiate-download":
            with self._lock:
                self._downloads[dataset_id] = time.monotonic() + self.prepare_s
            message = "Download successfully initiated. Proceed to poll the download url"
            return SimResponse(201, {"code": 0, "data": {"message": message}, "errorMsg": ""})
        with self._lock:
            ready_at = self._downloads.get(dataset_id)
        if ready_at is None:
            return SimResponse(400, {"code": 400, "data": None, "errorMsg": "Download has not been initiated"})
        if time.monotonic() < ready_at:
            return SimResponse(201, {"code": 0, "data": {"status": IN_PROGRESS}, "errorMsg": ""})
        url = f"{self.base_url}{FILES_PREFIX}{dataset_id}/{dataset_id}.csv"
        return SimResponse(201, {"code": 0, "data": {"status": SUCCESS, "url": url}, "errorMsg": ""})

    def _file(self, req: SimRequest) -> SimResponse:
        parts = req.path[len(FILES_PREFIX) :].split("/")
        if len(parts) != 2 or parts[0] != self.resource_id:
            return SimResponse(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
        return SimResponse(200, self._csv_bytes(), content_type="text/csv")

    def rate_limit_body(self) -> dict[str, Any]:
        return {"help": HELP_URL, "success": False, "error": {"__type": "Rate Limit", "message": "Too many requests"}}

    def _matching(self, q: str) -> list[dict[str, Any]]:
        if not q:
            return self.records
        with self._lock:
            cached = self._filtered.get(q)
        if cached is None:
            needle = q.lower()
            cached = [r for r in self.records if any(needle in str(v).lower() for v in r.values())]
            with self._lock:
                self._filtered[q] = cached
        return cached

    def _search(self, req: SimRequest) -> SimResponse:
        refused = self._over_quota(req, DATASTORE)
        if refused is not None:
            return refused
        resource_id = req.param("resource_id") or req.param("id")
        if not resource_id:
            return _error(409, {"__type": "Validation Error", "resource_id": ["Missing value"]})
        if resource_id != self.resource_id:
            return _error(
                404, {"__type": "Not Found Error", "message": f'Not found: Resource "{resource_id}" was not found.'}
            )
        numbers: dict[str, int] = {}
        for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
            text = req.param(name)
            try:
                numbers[name] = default if text in (None, "") else int(text)
            except ValueError:
                return _error(409, {"__type": "Validation Error", name: ["Invalid integer"]})
            if numbers[name] < 0:
                return _error(409, {"__type": "Validation Error", name: ["Must be a positive integer"]})
        limit, offset = min(numbers["limit"], self.rows_max), numbers["offset"]
        q = req.param("q") or ""
        matching = self._matching(q)
        page = matching[offset : offset + limit]
        base = f"{DATASTORE_PATH}?resource_id={resource_id}"
        result = {
            "resource_id": resource_id,
            "fields": [{"type": "int", "id": "_id"}] + [{"type": "text", "id": c} for c in STAGING_COLUMNS],
            "records": page,
            "limit": limit,
            "offset": offset,
            "total": len(matching),
            "_links": {"start": base, "next": f"{base}&offset={offset + limit}"},
        }
        return SimResponse(200, {"help": HELP_URL, "success": True, "result": result})
