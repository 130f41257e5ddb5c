"""Documented request quotas for the `realistic` simulators: fixed windows, and blocks when exceeded.

A vendor's limit is a `Window`: at most LIMIT requests per WINDOW_S seconds. Some vendors answer
the request past the limit with a longer penalty (ZeroBounce blocks `validatebatch` for 10
minutes); `block_s` holds that. `Quota` checks several windows at once (Lusha's per-second,
per-minute, hourly and daily limits) and says which one refused, and for how long, so a simulator
can answer with its vendor's documented 429 body.

Windows are fixed (they start at the first request and restart when they run out), as the
vendors' hourly and daily counters reset on a clock, not as a sliding log: a daily window of
50,000 requests then costs one counter instead of 50,000 timestamps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Window:
    """LIMIT requests per WINDOW_S seconds; past it, refused for the rest of the window or BLOCK_S."""

    name: str
    limit: int
    window_s: float
    block_s: float = 0.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0 or self.block_s < 0:
            raise ValueError(f"window {self.name!r}: limit >= 1, window_s > 0 and block_s >= 0 required")


@dataclass(frozen=True)
class Refusal:
    """Which window refused a request, and the seconds until it would be admitted."""

    window: Window
    retry_after_s: float


@dataclass
class _Counter:
    started: float
    count: int = 0
    blocked_until: float = 0.0


@dataclass
class Quota:
    """Several windows checked together; a request is counted only when every window admits it."""

    windows: Sequence[Window]
    clock: Callable[[], float] = time.monotonic
    _counters: dict[str, _Counter] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def take(self) -> Refusal | None:
        """Admit one request (None) or say which window refused it."""
        now = self.clock()
        with self._lock:
            for w in self.windows:
                c = self._counters.setdefault(w.name, _Counter(started=now))
                if now < c.blocked_until:
                    return Refusal(w, c.blocked_until - now)
                if now - c.started >= w.window_s:
                    c.started, c.count = now, 0
                if c.count >= w.limit:
                    if w.block_s:
                        c.blocked_until = now + w.block_s
                        return Refusal(w, w.block_s)
                    return Refusal(w, c.started + w.window_s - now)
            for w in self.windows:
                self._counters[w.name].count += 1
        return None

    def block(self, name: str, seconds: float) -> None:
        """Refuse every request for SECONDS through the window NAME (a penalty the vendor imposes)."""
        now = self.clock()
        with self._lock:
            c = self._counters.setdefault(name, _Counter(started=now))
            c.blocked_until = max(c.blocked_until, now + seconds)

    def used(self, name: str) -> int:
        """Requests counted in the current window NAME (0 before the first)."""
        with self._lock:
            c = self._counters.get(name)
            return 0 if c is None else c.count
