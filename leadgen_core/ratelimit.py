"""A rate limiter kept in Postgres, so a vendor's limit holds across processes.

Each call books the next free slot in one statement: the slot is the later of "now" (less a
burst allowance) and the bucket's next free slot, and the bucket moves one interval on. The
caller then sleeps until its slot. The row lock serialises bookings; `clock_timestamp()` keeps
time on the server, so the workers' clocks do not matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg

MAX_WAIT_S = 120.0

BOOK_SQL = """
INSERT INTO rate_limit_buckets AS b (bucket, next_slot_at)
VALUES (%(bucket)s, clock_timestamp() + make_interval(secs => %(interval)s))
ON CONFLICT (bucket) DO UPDATE SET next_slot_at =
    greatest(b.next_slot_at, clock_timestamp() - make_interval(secs => %(burst_window)s))
    + make_interval(secs => %(interval)s)
RETURNING extract(epoch FROM (next_slot_at - make_interval(secs => %(interval)s) - clock_timestamp()))::float8
"""


class SharedRateLimiter:
    """At most RATE_PER_S calls a second for BUCKET across every process, with bursts of BURST."""

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        bucket: str,
        rate_per_s: float,
        burst: int = 1,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._conn = conn
        self.bucket = bucket
        self.interval = 1.0 / rate_per_s
        self.burst_window = (burst - 1) * self.interval

    def book(self) -> float:
        """Book a slot; return the seconds to wait before using it (0 when it is now)."""
        params = {"bucket": self.bucket, "interval": self.interval, "burst_window": self.burst_window}
        with self._conn() as c:
            row = c.execute(BOOK_SQL, params).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))

    async def acquire(self) -> None:
        wait = await asyncio.to_thread(self.book)
        if wait > MAX_WAIT_S:
            raise TimeoutError(f"rate limiter {self.bucket}: next slot is {wait:.0f}s away")
        if wait > 0:
            await asyncio.sleep(wait)
