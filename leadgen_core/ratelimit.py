"""A rate limiter kept in Postgres, so a vendor's limit holds across processes.

Each call books the next free slot in one statement: the slot is the later of "now" (less a
burst allowance) and the bucket's next free slot, and the bucket moves one interval on. The
caller then sleeps until its slot. The row lock serialises bookings; `clock_timestamp()` keeps
time on the server, so the workers' clocks do not matter.

A caller that gives its slot up (the slot is more than MAX_WAIT_S away, or the caller is
cancelled while it waits) returns it: the bucket moves one interval back. Without that, every
refused or cancelled caller would push the queue further into the future for nothing, and a
saturated night would refuse ever more callers the longer it ran.
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


# Give one booked interval back, only while it is still ahead (an idle bucket is left alone).
RETURN_SQL = """
UPDATE rate_limit_buckets SET next_slot_at = next_slot_at - make_interval(secs => %(interval)s)
WHERE bucket = %(bucket)s AND next_slot_at - make_interval(secs => %(interval)s) > clock_timestamp()
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

    def give_back(self) -> None:
        """Return a booked slot the caller will not use."""
        with self._conn() as c:
            c.execute(RETURN_SQL, {"bucket": self.bucket, "interval": self.interval})

    async def acquire(self) -> None:
        """Wait for a slot; TimeoutError (the slot returned) when it is more than MAX_WAIT_S away."""
        wait = await asyncio.to_thread(self.book)
        if wait > MAX_WAIT_S:
            await asyncio.to_thread(self.give_back)
            raise TimeoutError(f"rate limiter {self.bucket}: next slot is {wait:.0f}s away")
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # shielded: the cancelled caller's slot goes back even while it is being torn down
                await asyncio.shield(asyncio.to_thread(self.give_back))
                raise


# The bucket's level now: what it held, plus the refill since, up to its capacity.
_REFILLED = "least(%(capacity)s, b.level + %(per_s)s * extract(epoch FROM (clock_timestamp() - b.updated_at)))"
TAKE_SQL = f"""
INSERT INTO rate_limit_token_buckets AS b (bucket, level, updated_at)
VALUES (%(bucket)s, %(capacity)s - %(cost)s, clock_timestamp())
ON CONFLICT (bucket) DO UPDATE SET level = {_REFILLED} - %(cost)s, updated_at = clock_timestamp()
RETURNING greatest(0, -level / %(per_s)s)::float8
"""  # noqa: S608 - the f-string inserts a constant expression; every value is a bound parameter
ADJUST_SQL = f"""
INSERT INTO rate_limit_token_buckets AS b (bucket, level, updated_at)
VALUES (%(bucket)s, least(%(ceiling)s, %(capacity)s + %(delta)s), clock_timestamp())
ON CONFLICT (bucket) DO UPDATE
SET level = least(%(ceiling)s, {_REFILLED} + %(delta)s), updated_at = clock_timestamp()
"""  # noqa: S608 - as above


class SharedTokenBucket:
    """A limit of PER_MINUTE units (tokens, say) for BUCKET across every process.

    `take(cost)` books COST units and sleeps until the refill covers them; callers book ahead in
    arrival order, so a large reservation waits its turn instead of starving. `adjust` settles a
    reservation (a refund is positive), `cap` lowers the level to what the vendor says remains,
    `block` keeps the bucket empty for a while (a 429's reset).
    """

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        bucket: str,
        per_minute: float,
        capacity: float | None = None,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._conn = conn
        self.bucket = bucket
        self.per_s = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)

    def _params(self, **extra: float) -> dict[str, object]:
        return {"bucket": self.bucket, "per_s": self.per_s, "capacity": self.capacity, **extra}

    def book(self, cost: float) -> float:
        """Book COST units (at most the capacity); the seconds to wait before using them."""
        with self._conn() as c:
            row = c.execute(TAKE_SQL, self._params(cost=min(cost, self.capacity))).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))

    def _adjust(self, *, delta: float = 0.0, ceiling: float | None = None) -> None:
        params = self._params(delta=delta, ceiling=self.capacity if ceiling is None else ceiling)
        with self._conn() as c:
            c.execute(ADJUST_SQL, params)

    async def take(self, cost: float, *, max_wait_s: float = MAX_WAIT_S) -> None:
        wait = await asyncio.to_thread(self.book, cost)
        if wait > max_wait_s:
            await self.adjust(min(cost, self.capacity))  # give the booking back: it will not be used
            raise TimeoutError(f"rate limiter {self.bucket}: {cost:.0f} units are {wait:.0f}s away")
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:  # a cancelled caller's units go back, as a refused one's do
                await asyncio.shield(self.adjust(min(cost, self.capacity)))
                raise

    async def adjust(self, delta: float) -> None:
        """Give back DELTA units (or take more when negative), never above the capacity."""
        await asyncio.to_thread(lambda: self._adjust(delta=delta))

    async def cap(self, remaining: float) -> None:
        """The vendor says only REMAINING units are left: never believe there are more."""
        await asyncio.to_thread(lambda: self._adjust(ceiling=remaining))

    async def block(self, seconds: float) -> None:
        """Nothing passes for SECONDS (the vendor refused and named its reset)."""
        await asyncio.to_thread(lambda: self._adjust(ceiling=-self.per_s * seconds))
