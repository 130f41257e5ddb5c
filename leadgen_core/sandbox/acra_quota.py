"""data.gov.sg's documented API quotas, as sliding windows per caller (realistic profile only).

Sources, both on guide.data.gov.sg:
* developer-guide/dataset-apis/download-dataset: "If you exceed the quota of 5 requests per
  minute, you'll likely receive a 429 Error"; `x-api-key` is the "API key for higher rate limits".
* developer-guide/api-overview/api-rate-limits: limits "reset every 10 seconds"; calls per 10 s
  for Datastore Search 4 (no key) / 8 (dev key) / 20 (prod key) and for Dataset Downloads
  2 / 4 / 10.

Without a key both pages apply: at most 5 API calls a minute over datastore_search and the
download API together, and the per-10-second limits of each. With a key only the per-10-second
limits of its tier apply. Windows shrink with the profile's time scale; counts do not, so a
time scale K allows K times the documented rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Final, Literal

from leadgen_core.sandbox.profile import SandboxProfile

KeyTier = Literal["none", "dev", "prod"]
DATASTORE: Final = "datastore"
DOWNLOAD: Final = "download"

# download-dataset page: "the quota of 5 requests per minute" (callers without a key).
KEYLESS_PER_MINUTE: Final = 5
MINUTE_S: Final = 60.0
# api-rate-limits page: "reset every 10 seconds"; calls per 10 s by endpoint and tier.
WINDOW_S: Final = 10.0
PER_10S: Final[dict[str, dict[KeyTier, int]]] = {
    DATASTORE: {"none": 4, "dev": 8, "prod": 20},
    DOWNLOAD: {"none": 2, "dev": 4, "prod": 10},
}


class QuotaBook:
    """Counts calls per (caller, rule) and says how long a refused caller must wait."""

    def __init__(self, profile: SandboxProfile) -> None:
        self.profile = profile
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _rules(self, kind: str, tier: KeyTier) -> list[tuple[str, int, float]]:
        rules = [(kind, PER_10S[kind][tier], self.profile.period(WINDOW_S))]
        if tier == "none":
            rules.append(("any", KEYLESS_PER_MINUTE, self.profile.period(MINUTE_S)))
        return rules

    def take(self, kind: str, tier: KeyTier, key: str) -> float | None:
        """Book one call of KIND for the caller; None if allowed, else the seconds until it would be."""
        now = time.monotonic()
        with self._lock:
            waits: list[float] = []
            windows = []
            for name, limit, span in self._rules(kind, tier):
                window = self._calls.setdefault((key, name), deque())
                while window and now - window[0] >= span:
                    window.popleft()
                if len(window) >= limit:
                    waits.append(window[0] + span - now)
                windows.append(window)
            if waits:
                return max(waits)
            for window in windows:
                window.append(now)
            return None
