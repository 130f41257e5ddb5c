"""A fixed pool of server workers per key, taken strictly in arrival order.

A real Odoo in multiprocessing mode serves each HTTP request on one worker process, and a request
that finds every worker busy waits for the next free one. `WorkerPool` gives a simulator the same
shape: `with pool.slot(key):` blocks until one of `size` slots of KEY is free, first come first
served (a plain `threading.Semaphore` wakes waiters in no particular order, which would let a late
request overtake an early one and hide head-of-line waiting).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class _Lane:
    busy: int = 0
    waiting: deque[int] = field(default_factory=deque)


class WorkerPool:
    """SIZE concurrent slots per key; waiters are served in the order they arrived."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, got {size}")
        self.size = size
        self._cond = threading.Condition()
        self._lanes: dict[str, _Lane] = {}
        self._tickets = itertools.count()
        self.peak_busy = 0  # the most slots of one key ever held at once (tests assert on it)
        self.arrivals = 0  # requests that have asked for a slot

    @contextmanager
    def slot(self, key: str) -> Iterator[None]:
        with self._cond:
            lane = self._lanes.setdefault(key, _Lane())
            ticket = next(self._tickets)
            self.arrivals += 1
            lane.waiting.append(ticket)
            while lane.waiting[0] != ticket or lane.busy >= self.size:
                self._cond.wait()
            lane.waiting.popleft()
            lane.busy += 1
            self.peak_busy = max(self.peak_busy, lane.busy)
            self._cond.notify_all()  # the next in line may fit in another free slot
        try:
            yield
        finally:
            with self._cond:
                lane.busy -= 1
                self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self.peak_busy = 0
            self.arrivals = 0
