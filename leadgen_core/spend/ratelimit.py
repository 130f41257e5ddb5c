"""A rate limiter kept in Postgres, so a vendor's limit holds across processes.

Each call books a slot in one statement (`rate_limit_book_fair`, sql/044): the earliest time from
"now" (less a burst allowance) at least one interval from every booked slot of the bucket and, when
K tenants share the bucket, K intervals from the tenant's own slots, so every waiting tenant gets
an equal share however many calls it has in flight. The caller then sleeps until its slot. The
bucket's row lock serialises bookings; `clock_timestamp()` keeps time on the server, so the
workers' clocks do not matter.

`SharedQuota` (at the end) adds request quotas over long windows, such as a plan's hourly and
daily limits, which a per-second pace cannot express.

A caller that gives its slot up (the slot is more than MAX_WAIT_S away, or the caller is
cancelled while it waits) returns it: its slot is freed for the next booker. Without that, every
refused or cancelled caller would push the queue further into the future for nothing, and a
saturated night would refuse ever more callers the longer it ran.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from leadgen_core.db.steps import db_step
from leadgen_core.errors import RateLimited

MAX_WAIT_S = 120.0

# One round trip: the function (sql/044) locks the bucket, counts its active tenants and books
# the earliest slot that keeps the bucket's pace and the tenant's fair share.
BOOK_SQL = """
SELECT slot_id, wait_s
FROM rate_limit_book_fair(%(bucket)s, %(tenant)s, %(interval)s, %(burst_window)s, %(active_s)s)
"""

# Give one booked slot back, only while it is still ahead (a slot in the past was used, or lost).
RETURN_SQL = """
DELETE FROM rate_limit_slots
WHERE slot_id = %(slot)s AND at > extract(epoch FROM clock_timestamp())
"""

# A tenant counts as sharing a bucket while it has a slot ahead or one in the last ACTIVE_WINDOW_S
# seconds (or two intervals, for a slow bucket): long enough to bridge a call's latency between
# two bookings of a waiting tenant, short enough that a tenant that stopped frees its share soon.
ACTIVE_WINDOW_S = 3.0


class SharedRateLimiter:
    """At most RATE_PER_S calls a second for BUCKET across every process, with bursts of BURST.

    TENANT names who books: with K tenants active on the bucket, each holds at most 1/K of the
    upcoming slots (sql/044), so a tenant with more calls in flight waits longer rather than
    crowding the others out. Slots nobody books go to whoever asks next: a lone tenant has the
    full rate.

    CONN lends a connection in a transaction; ONE, when given, one outside a transaction block
    (`Database.global_statement`) for the operations that are a single statement, each atomic on
    its own: the booking and the give-back then cost one round trip, not three.
    """

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        bucket: str,
        rate_per_s: float,
        burst: int = 1,
        tenant: str = "",
        one: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._conn = conn
        self._one = one or conn  # booking and giving back are one statement each (see the class doc)
        self.bucket = bucket
        self.tenant = tenant
        self.interval = 1.0 / rate_per_s
        self.burst_window = (burst - 1) * self.interval
        self.active_s = max(ACTIVE_WINDOW_S, 2 * self.interval)
        self._last_slot: int | None = None

    def book_params(self) -> dict[str, object]:
        """BOOK_SQL's parameters."""
        return {"bucket": self.bucket, "tenant": self.tenant, "interval": self.interval,
                "burst_window": self.burst_window, "active_s": self.active_s}  # fmt: skip

    def book_slot(self) -> tuple[int, float]:
        """Book a slot: its id (for `give_back`) and the seconds to wait before using it."""
        with self._one() as c:
            row = c.execute(BOOK_SQL, self.book_params()).fetchone()
        assert row is not None
        return int(row[0]), max(0.0, float(row[1]))

    def book(self) -> float:
        """Book a slot; return the seconds to wait before using it (0 when it is now)."""
        slot, wait = self.book_slot()
        self._last_slot = slot
        return wait

    def give_back(self, slot: int | None = None) -> None:
        """Return a booked slot the caller will not use (by default the last one `book` made)."""
        slot = self._last_slot if slot is None else slot
        if slot is None:
            return
        with self._one() as c:
            c.execute(RETURN_SQL, {"slot": slot})

    async def acquire(self) -> None:
        """Wait for a slot; TimeoutError (the slot returned) when it is more than MAX_WAIT_S away."""
        slot, wait = await db_step(self.book_slot)
        if wait > MAX_WAIT_S:
            await db_step(self.give_back, slot)
            raise TimeoutError(f"rate limiter {self.bucket}: next slot is {wait:.0f}s away")
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # shielded: the cancelled caller's slot goes back even while it is being torn down
                await asyncio.shield(db_step(self.give_back, slot))
                raise


# The bucket's level now: what it held, plus the refill since, up to its capacity.
_REFILLED = "least(%(capacity)s, b.level + %(per_s)s * extract(epoch FROM (clock_timestamp() - b.updated_at)))"
TAKE_SQL = f"""
INSERT INTO rate_limit_token_buckets AS b (bucket, level, updated_at)
VALUES (%(bucket)s, %(capacity)s - %(cost)s, clock_timestamp())
ON CONFLICT (bucket) DO UPDATE SET level = {_REFILLED} - %(cost)s, updated_at = clock_timestamp()
RETURNING greatest(0, -level / %(per_s)s)::float8
"""  # noqa: S608 - the f-string inserts a constant expression; every value is a bound parameter
# A tenant's share of a token bucket: its own bucket (`<bucket>:tenant:<id>`) refilling at 1/K of
# the rate, K the tenants active on the bucket (booked in the last ACTIVE_WINDOW_S, or still in
# debt, i.e. waiting) counting this one. One statement: count, then take.
TAKE_SHARE_SQL = """
WITH active AS (
    SELECT 1 + count(*) AS k FROM rate_limit_token_buckets
    WHERE left(bucket, length(%(prefix)s)) = %(prefix)s AND bucket <> %(bucket)s
        AND (updated_at > clock_timestamp() - make_interval(secs => %(active_s)s) OR level < 0)
)
INSERT INTO rate_limit_token_buckets AS b (bucket, level, updated_at)
SELECT %(bucket)s, %(capacity)s / active.k - %(cost)s, clock_timestamp() FROM active
ON CONFLICT (bucket) DO UPDATE SET
    level = least(%(capacity)s / (SELECT k FROM active),
                  b.level + %(per_s)s / (SELECT k FROM active) * extract(epoch FROM (clock_timestamp() - b.updated_at)))
        - %(cost)s,
    updated_at = clock_timestamp()
RETURNING greatest(0, -level / (%(per_s)s / (SELECT k FROM active)))::float8
"""
ADJUST_SQL = f"""
INSERT INTO rate_limit_token_buckets AS b (bucket, level, updated_at)
VALUES (%(bucket)s, least(%(ceiling)s, %(capacity)s + %(delta)s), clock_timestamp())
ON CONFLICT (bucket) DO UPDATE
SET level = least(%(ceiling)s, {_REFILLED} + %(delta)s), updated_at = clock_timestamp()
"""  # noqa: S608 - as above


def apply_adjustments(
    conn: Callable[[], AbstractContextManager[psycopg.Connection]], changes: list[dict[str, object]]
) -> None:
    """ADJUST_SQL once for each of CHANGES (`SharedTokenBucket.adjust_params`), all or none: a call's
    settlement touches several buckets. The statements go in one pipeline (psycopg's `executemany`),
    in order, one round trip for all. CONN is best a statement connection (`Database.
    global_statement`): on it the pipeline's statements, sent before one Sync, are one implicit
    transaction, and the BEGIN and COMMIT round trips of a transaction-lending CONN are saved."""
    with conn() as c, c.cursor() as cur:
        cur.executemany(ADJUST_SQL, changes)


class SharedTokenBucket:
    """A limit of PER_MINUTE units (tokens, say) for BUCKET across every process.

    `take(cost)` books COST units and sleeps until the refill covers them; callers book ahead in
    arrival order, so a large reservation waits its turn instead of starving. With a TENANT a
    caller first books its tenant's share (`take`), so tenants waiting on the bucket get equal
    shares of it however many calls each has in flight. `adjust` settles a
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
        tenant: str = "",
        one: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        # `book`, `book_share` and the adjustments' pipeline are one statement (or one implicit
        # transaction) each, as SharedRateLimiter's
        self._one = one or conn
        self.bucket = bucket
        self.per_s = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else per_minute)
        self.tenant = tenant
        self.share_prefix = f"{bucket}:tenant:"
        self.share_bucket = f"{self.share_prefix}{tenant}" if tenant else ""

    def _params(self, **extra: float) -> dict[str, object]:
        return {"bucket": self.bucket, "per_s": self.per_s, "capacity": self.capacity, **extra}

    def book(self, cost: float) -> float:
        """Book COST units (at most the capacity); the seconds to wait before using them."""
        with self._one() as c:
            row = c.execute(TAKE_SQL, self._params(cost=min(cost, self.capacity))).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))

    def book_share(self, cost: float) -> float:
        """Book COST units in the tenant's share (see TAKE_SHARE_SQL); the seconds to wait for them."""
        params = {**self._params(cost=min(cost, self.capacity)), "bucket": self.share_bucket,
                  "prefix": self.share_prefix, "active_s": ACTIVE_WINDOW_S}  # fmt: skip
        with self._one() as c:
            row = c.execute(TAKE_SHARE_SQL, params).fetchone()
        assert row is not None
        return max(0.0, float(row[0]))

    def adjust_params(
        self, *, delta: float = 0.0, ceiling: float | None = None, bucket: str | None = None
    ) -> dict[str, object]:
        """ADJUST_SQL's parameters: DELTA units back (taken when negative), the level at most CEILING."""
        params = self._params(delta=delta, ceiling=self.capacity if ceiling is None else ceiling)
        if bucket is not None:
            params["bucket"] = bucket
        return params

    def _adjust(self, *, delta: float = 0.0, ceiling: float | None = None, bucket: str | None = None) -> None:
        apply_adjustments(self._one, [self.adjust_params(delta=delta, ceiling=ceiling, bucket=bucket)])

    async def _wait(self, wait: float, cost: float, max_wait_s: float, *, share: bool) -> None:
        """Sleep WAIT for COST units; beyond MAX_WAIT_S, or when cancelled, give them back."""
        give_back = self._give_back_share if share else self._give_back
        if wait > max_wait_s:
            await give_back(min(cost, self.capacity))  # the booking will not be used
            raise TimeoutError(f"rate limiter {self.bucket}: {cost:.0f} units are {wait:.0f}s away")
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:  # a cancelled caller's units go back, as a refused one's do
                await asyncio.shield(give_back(min(cost, self.capacity)))
                raise

    async def take(self, cost: float, *, max_wait_s: float = MAX_WAIT_S) -> None:
        """COST units, waiting their turn. With a TENANT, first its share: with K tenants waiting on
        the bucket, each books the shared bucket at most at 1/K of its rate, so a tenant with more
        calls in flight waits in its own share instead of queueing ahead of everyone's."""
        if self.share_bucket:
            wait = await db_step(self.book_share, cost)
            await self._wait(wait, cost, max_wait_s, share=True)
        try:
            wait = await db_step(self.book, cost)
            await self._wait(wait, cost, max_wait_s, share=False)
        except BaseException:
            if self.share_bucket:
                await asyncio.shield(self._give_back_share(min(cost, self.capacity)))
            raise

    async def _give_back(self, units: float) -> None:
        await db_step(lambda: self._adjust(delta=units))

    async def _give_back_share(self, units: float) -> None:
        await db_step(lambda: self._adjust(delta=units, bucket=self.share_bucket))

    async def adjust(self, delta: float) -> None:
        """Give back DELTA units (or take more when negative), never above the capacity (the
        tenant's share too, so a settled reservation's slack goes back to both; one transaction)."""
        await db_step(apply_adjustments, self._one, self.adjustments(delta))

    def adjustments(self, delta: float) -> list[dict[str, object]]:
        """`adjust`'s changes (`apply_adjustments`), to apply with others in one transaction."""
        changes = [self.adjust_params(delta=delta)]
        if self.share_bucket:
            changes.append(self.adjust_params(delta=delta, bucket=self.share_bucket))
        return changes

    async def cap(self, remaining: float) -> None:
        """The vendor says only REMAINING units are left: never believe there are more."""
        await db_step(lambda: self._adjust(ceiling=remaining))

    async def block(self, seconds: float) -> None:
        """Nothing passes for SECONDS (the vendor refused and named its reset)."""
        await db_step(lambda: self._adjust(ceiling=-self.per_s * seconds))


# --- request quotas over long windows (Lusha's hourly and daily plan limits) -------------------
# The window containing now, aligned to the epoch (whole hours, whole UTC days).
_WINDOW_START = "to_timestamp(floor(extract(epoch FROM clock_timestamp()) / %(window_s)s) * %(window_s)s)"
# Adds the window's row if missing and locks it, so concurrent takers of one quota serialise.
LOCK_WINDOW_SQL = f"""
INSERT INTO rate_limit_windows AS w (bucket, window_s, window_start, used)
VALUES (%(bucket)s, %(window_s)s, {_WINDOW_START}, 0)
ON CONFLICT (bucket, window_s, window_start) DO UPDATE SET used = w.used
RETURNING window_start, used,
    extract(epoch FROM (window_start + make_interval(secs => %(window_s)s) - clock_timestamp()))::float8
"""  # noqa: S608 - the f-string inserts a constant expression; every value is a bound parameter
TAKE_WINDOW_SQL = """
UPDATE rate_limit_windows SET used = used + 1
WHERE bucket = %(bucket)s AND window_s = %(window_s)s AND window_start = %(start)s
"""
# Old windows are dropped by whoever takes a request: the table holds a few rows per quota.
PRUNE_WINDOWS_SQL = """
DELETE FROM rate_limit_windows
WHERE bucket = %(bucket)s AND window_s = %(window_s)s
    AND window_start < clock_timestamp() - make_interval(secs => 2 * %(window_s)s)
"""


@dataclass(frozen=True)
class QuotaWindow:
    """At most LIMIT requests per WINDOW_S seconds (3,600: an hour; 86,400: a day)."""

    limit: int
    window_s: int


class SharedQuota:
    """Request quotas of BUCKET over several long windows, across every process.

    `take()` counts one request in every window only when all of them have room (one transaction
    holds the windows' row locks), else says how long until the fullest one resets. `acquire`
    waits up to MAX_WAIT_S for that; a quota that resets later (tonight's hourly or daily limit is
    spent) raises RateLimited, so the company degrades `rate_limited:<vendor>` instead of waiting.
    """

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        vendor: str,
        bucket: str,
        windows: Sequence[QuotaWindow],
    ) -> None:
        if not windows or any(w.limit < 1 or w.window_s < 1 for w in windows):
            raise ValueError("a quota needs windows with a positive limit and length")
        self._conn = conn
        self.vendor = vendor
        self.bucket = bucket
        self.windows = tuple(windows)

    def take(self) -> float:
        """Count one request (0.0), or the seconds until a full window resets (nothing counted)."""
        with self._conn() as c:
            waits, starts = [], []
            for w in self.windows:
                row = c.execute(LOCK_WINDOW_SQL, {"bucket": self.bucket, "window_s": w.window_s}).fetchone()
                assert row is not None
                starts.append(row[0])
                if int(row[1]) >= w.limit:
                    waits.append(max(0.0, float(row[2])))
            if waits:
                return max(waits)
            for w, start in zip(self.windows, starts, strict=True):
                params = {"bucket": self.bucket, "window_s": w.window_s, "start": start}
                c.execute(TAKE_WINDOW_SQL, params)
                c.execute(PRUNE_WINDOWS_SQL, params)
        return 0.0

    def used(self) -> dict[int, int]:
        """Requests counted in each window now (by window length)."""
        with self._conn() as c:
            out = {}
            for w in self.windows:
                row = c.execute(LOCK_WINDOW_SQL, {"bucket": self.bucket, "window_s": w.window_s}).fetchone()
                out[w.window_s] = int(row[1]) if row else 0
        return out

    async def acquire(self) -> None:
        """Take a request, waiting up to MAX_WAIT_S for a window to reset; RateLimited beyond."""
        deadline = time.monotonic() + MAX_WAIT_S
        while True:
            wait = await db_step(self.take)
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                message = f"quota {self.bucket} is spent for {wait:.0f}s"
                raise RateLimited(self.vendor, message, retry_after=wait)
            await asyncio.sleep(wait + 0.01)
