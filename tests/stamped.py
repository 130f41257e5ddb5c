"""Rate limiters that record when the server scheduled each booking.

A test that stamps `time.monotonic()` when a caller wakes from its wait measures the machine as
much as the limiter: on a loaded machine several sleepers wake in one burst, and a second's
window then holds more wake-ups than the limiter ever allowed. These subclasses send the same
statements with one more returned column, the server's clock at the booking, and record the
booking's time as that clock plus the wait it returned: what the limiter decided, and nothing
else.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from leadgen_core.spend.ratelimit import BOOK_SQL, TAKE_SQL, SharedRateLimiter, SharedTokenBucket

NOW = "extract(epoch FROM clock_timestamp())::float8"  # evaluated after the booking, in its statement
STAMPED_BOOK_SQL = BOOK_SQL.replace("SELECT slot_id, wait_s", f"SELECT slot_id, wait_s, {NOW} + greatest(wait_s, 0)")
STAMPED_TAKE_SQL = TAKE_SQL.rstrip() + f", {NOW}"  # RETURNING is the statement's last clause
assert STAMPED_BOOK_SQL != BOOK_SQL

Conn = Callable[[], AbstractContextManager[psycopg.Connection]]


class StampedLimiter(SharedRateLimiter):
    """A SharedRateLimiter appending each booked slot's time (server epoch seconds) to STAMPS."""

    def __init__(self, conn: Conn, *, stamps: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.stamps = [] if stamps is None else stamps

    def book_slot(self) -> tuple[int, float]:
        with self._one() as c:
            row = c.execute(STAMPED_BOOK_SQL, self.book_params()).fetchone()
        assert row is not None
        self.stamps.append(float(row[2]))
        return int(row[0]), max(0.0, float(row[1]))


class StampedBucket(SharedTokenBucket):
    """A SharedTokenBucket appending when each booking's units are due (server epoch seconds)."""

    def __init__(self, conn: Conn, *, stamps: list[float] | None = None, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.stamps = [] if stamps is None else stamps

    def book(self, cost: float) -> float:
        with self._one() as c:
            row = c.execute(STAMPED_TAKE_SQL, self._params(cost=min(cost, self.capacity))).fetchone()
        assert row is not None
        wait = max(0.0, float(row[0]))
        self.stamps.append(float(row[1]) + wait)
        return wait
