"""Fair sharing of a shared rate bucket between tenants (issue 9 §2, sql/044).

Real: Postgres (the app role), `SharedRateLimiter` and its booking function. Each tenant runs in
its own thread with its own event loop and connection pool, as separate tenant nights do in
separate processes; the only thing they share is the bucket in Postgres. Calls cost nothing
here, so every worker books again as soon as its slot comes: every tenant is always waiting.

The tests count *booked* slots, each at the time the server scheduled it (its clock at the
booking plus the wait it returned): that is what the limiter decides, and a loaded machine's
late wake-ups (several sleepers woken in one burst) do not move it.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from leadgen_core.db.pool import Database
from tests.conftest import DbHandle
from tests.stamped import StampedBucket, StampedLimiter

RATE = 40.0  # slots a second
BUCKET = "vendor:test-fair"
TOKEN_BUCKET = "openai:test-fair:tokens"
TOKEN_COST = 500  # tokens a call books: RATE calls a second is the bucket's tokens per minute


def run_tenants(dsn: str, workers: dict[str, int], *, seconds: float, tokens: bool = False) -> dict[str, list[float]]:
    """Each tenant's booked times (server epoch seconds) while WORKERS[tenant] callers book for
    SECONDS (with TOKENS, TOKEN_COST units each of a tokens-per-minute bucket, not request slots)."""
    times: dict[str, list[float]] = {t: [] for t in workers}
    start = threading.Barrier(len(workers))
    stop_at: list[float] = []

    def tenant(name: str, n: int) -> None:
        db = Database(dsn, min_size=1, max_size=min(n, 6), name=f"fair-{name}")
        # as the stages do: each booking is one statement outside a transaction block
        limiter = StampedLimiter(db.global_transaction, bucket=BUCKET, rate_per_s=RATE, tenant=name,
                                 one=db.global_statement, stamps=times[name])  # fmt: skip
        bucket = StampedBucket(db.global_transaction, bucket=TOKEN_BUCKET, per_minute=RATE * TOKEN_COST * 60,
                               capacity=2 * TOKEN_COST, tenant=name, one=db.global_statement,
                               stamps=times[name])  # fmt: skip

        async def worker() -> None:
            while time.monotonic() < stop_at[0]:
                await (bucket.take(TOKEN_COST) if tokens else limiter.acquire())

        async def main() -> None:
            await asyncio.gather(*(worker() for _ in range(n)))

        with db:
            start.wait()
            if not stop_at:
                stop_at.append(time.monotonic() + seconds)
            asyncio.run(main())

    threads = [threading.Thread(target=tenant, args=(t, n)) for t, n in workers.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=seconds + 60)
    return times


def in_window(times: list[float], lo: float, hi: float) -> int:
    return sum(lo <= t < hi for t in times)


@pytest.mark.parametrize(
    ("workers", "tokens"),
    [
        ({"alpha": 20, "beta": 4}, False),
        ({"alpha": 20, "beta": 4, "gamma": 6}, False),
        ({"alpha": 20, "beta": 4}, True),
    ],
    ids=["requests-2", "requests-3", "tokens-2"],
)
def test_each_waiting_tenant_gets_an_equal_share(clean_db: DbHandle, workers: dict[str, int], tokens: bool) -> None:
    times = run_tenants(clean_db.app_dsn, workers, seconds=6.0, tokens=tokens)
    first = min(min(ts) for ts in times.values())
    # after a second of warm-up (alpha's first bookings are queued ahead of the others'), every
    # tenant waits throughout: count their slots over the next four seconds
    lo, hi = first + 1.5, first + 5.5
    got = {t: in_window(ts, lo, hi) for t, ts in times.items()}
    total = sum(got.values())
    share = total / len(workers)
    assert total == pytest.approx(RATE * (hi - lo), rel=0.15), got  # the bucket is used, not wasted
    for tenant, n in got.items():  # alpha has 10x beta's calls in flight, yet no more slots
        assert n == pytest.approx(share, rel=0.2), (tenant, got)
    every = sorted(t for ts in times.values() for t in ts)
    # and the vendor's pace holds: never more than a second's slots (and the tokens bucket's burst
    # of two) in a second
    busiest = max(in_window(every, t, t + 1.0) for t in every)
    assert busiest <= RATE + 2, busiest


def test_a_lone_tenant_gets_the_full_rate(clean_db: DbHandle) -> None:
    times = run_tenants(clean_db.app_dsn, {"beta": 4}, seconds=4.0)["beta"]
    lo = min(times) + 0.5
    assert in_window(times, lo, lo + 3.0) == pytest.approx(RATE * 3.0, rel=0.1)


def test_a_tenant_that_stops_leaves_its_share_to_the_others(clean_db: DbHandle) -> None:
    db = Database(clean_db.app_dsn, min_size=1, max_size=2, name="fair-gone")
    with db:
        gone = StampedLimiter(db.global_transaction, bucket=BUCKET, rate_per_s=RATE, tenant="gone")
        assert gone.book() == 0.0  # a tenant was active a moment ago, then stopped
    left = gone.stamps[0]  # its slot, on the server's clock: it counts as active for 3 s after it
    # alpha alone afterwards: half the rate at most while "gone" still counts, then all of it
    times = run_tenants(clean_db.app_dsn, {"alpha": 4}, seconds=6.0)["alpha"]
    early = (max(min(times), left) + 0.3, left + 2.7)
    assert early[1] - early[0] >= 1.0, "alpha started too late to see the share"
    assert in_window(times, *early) == pytest.approx(RATE / 2 * (early[1] - early[0]), rel=0.2)
    late = left + 3.5
    assert in_window(times, late, late + 1.5) == pytest.approx(RATE * 1.5, rel=0.15)
