"""Politeness: a minimum interval between requests to one domain, shared by every worker.

Each call reserves the domain's next free slot under a lock and then sleeps until that slot, so
N concurrent callers for one domain start at interval spacing while callers for other domains
never wait on them. The lock is a `threading.Lock` held only for the arithmetic (no await inside),
so the limiter is shared safely by asyncio workers in one loop and by loops in other threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict

DEFAULT_MAX_DOMAINS = 10_000


def domain_key(host: str) -> str:
    """The politeness key of a host: "www.Acme.com." and "acme.com" are one site."""
    key = host.strip().lower().rstrip(".")
    return key[4:] if key.startswith("www.") else key


class DomainLimiter:
    """One minimum interval per domain, process-wide, with bounded memory."""

    def __init__(self, min_interval_s: float, *, max_domains: int = DEFAULT_MAX_DOMAINS) -> None:
        if min_interval_s < 0:
            raise ValueError("min_interval_s must be >= 0")
        self.min_interval_s = min_interval_s
        self._max_domains = max(1, max_domains)
        self._next_slot: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._next_slot)

    def _reserve(self, key: str, interval: float) -> float:
        """Book the domain's next slot; return how long the caller must wait for it."""
        now = time.monotonic()
        with self._lock:
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + interval
            self._next_slot.move_to_end(key)
            self._evict(now)
        return slot - now

    def _evict(self, now: float) -> None:
        # Entries whose next slot has passed carry no information, so they go first (oldest use
        # first); if every entry is still pending, the oldest goes anyway to keep memory bounded.
        while len(self._next_slot) > self._max_domains:
            oldest, slot = next(iter(self._next_slot.items()))
            if slot > now:
                stale = next((k for k, s in self._next_slot.items() if s <= now), None)
                oldest = stale if stale is not None else oldest
            del self._next_slot[oldest]

    async def wait(self, host: str, *, min_interval_s: float | None = None) -> float:
        """Wait for the host's turn; returns the seconds slept.

        `min_interval_s` may raise the interval for this domain (a robots.txt crawl-delay); it
        never lowers it below the limiter's own interval.
        """
        interval = max(self.min_interval_s, min_interval_s or 0.0)
        delay = self._reserve(domain_key(host), interval)
        if delay > 0:
            await asyncio.sleep(delay)
        return max(delay, 0.0)
