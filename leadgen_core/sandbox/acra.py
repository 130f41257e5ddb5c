"""A simulated data.gov.sg: CKAN `datastore_search` over a synthetic ACRA registry.

Simulated: the registry (leadgen_core.acra.synth rows, deterministic per seed) and the server.
Real: the HTTP exchange over loopback sockets, CKAN's answer shapes (success/result/records/total/
fields/_links; `{"success": false, "error": {"__type": ...}}` with 404 for an unknown resource and
409 for a bad parameter), `limit`/`offset` paging with a server-side cap on `limit`, a plain `q`
full-text filter, and 429 with Retry-After through FaultConfig.rate_limit_per_s.
"""

from __future__ import annotations

from typing import Any, Final

from leadgen_core.acra.columns import STAGING_COLUMNS
from leadgen_core.acra.synth import generate_rows
from leadgen_core.sandbox.base import FaultConfig, SimRequest, SimResponse, SimServer
from leadgen_core.sandbox.profile import DEMO, SandboxProfile

DATASTORE_PATH: Final = "/api/action/datastore_search"
DEFAULT_RESOURCE_ID: Final = "d_acra_sandbox_00000000000000000000"
DEFAULT_LIMIT: Final = 100
# CKAN's ckan.datastore.search.rows_max default: larger limits are silently capped.
ROWS_MAX: Final = 32_000
HELP_URL: Final = "https://data.gov.sg/api/3/action/help_show?name=datastore_search"


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
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.resource_id = resource_id
        self.rows_max = rows_max
        # CKAN numbers rows with an integer _id from 1, in insertion order.
        self.records: list[dict[str, Any]] = [
            {"_id": i, **row}
            for i, row in enumerate(generate_rows(rows, seed=seed, malformed_rate=malformed_rate), start=1)
        ]
        self._filtered: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", DATASTORE_PATH, self._search)

    def start(self) -> AcraSim:  # narrowed return type, so `with AcraSim(...) as sim` is an AcraSim
        super().start()
        return self

    def __enter__(self) -> AcraSim:
        return self.start()

    @property
    def api_url(self) -> str:
        """What ACRA_API_URL should be set to for clients of this simulator."""
        return f"{self.base_url}{DATASTORE_PATH}"

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
