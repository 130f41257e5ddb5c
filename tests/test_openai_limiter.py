"""The token-aware OpenAI limiter: shared token buckets in Postgres, and the extractor using them.

Real: Postgres (the app role, the `rate_limit_token_buckets` table of migration 020), separate OS
processes for the cross-process test, the OpenAI simulator on loopback under the `realistic`
profile, called through the official SDK. Simulated: OpenAI itself, with small explicit limits
(`OpenAISim(limits=...)`) so a minute's allowance is spent in seconds.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import openai
import psycopg
import pytest

from leadgen_core.db.pool import Database
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.profile import SandboxProfile
from leadgen_core.spend.openai_limiter import OpenAILimiter
from leadgen_core.spend.ratelimit import SharedTokenBucket
from leadgen_core.vendors.openai_extract import OpenAIExtractor
from leadgen_core.vendors.openai_tiers import TierLimits
from tests.stamped import StampedBucket

KEY = "sandbox-openai-key"
REALISTIC = SandboxProfile.parse("realistic")
Conn = Callable[[], AbstractContextManager[psycopg.Connection]]


def conn_of(db: Database) -> Conn:
    return lambda: db.global_transaction()


def test_bookings_wait_for_the_refill_and_settlement_gives_back_the_slack(app_db: Database) -> None:
    bucket = SharedTokenBucket(conn_of(app_db), bucket="t:settle", per_minute=600)  # 10 a second
    assert bucket.book(600) == 0.0  # a full minute's allowance is there at once
    # then it waits for the refill (less what refilled since the first booking: the waits below
    # are one-sided, as the time between two statements can only shorten them)
    assert 9.0 < bucket.book(100) <= 10.0
    asyncio.run(bucket.adjust(700))  # both calls were counted at nothing: give it all back
    assert bucket.book(300) == 0.0


def test_the_vendors_word_and_a_refusal_lower_the_bucket(app_db: Database) -> None:
    bucket = SharedTokenBucket(conn_of(app_db), bucket="t:cap", per_minute=600)
    asyncio.run(bucket.cap(0))  # the vendor says nothing remains, whatever we booked
    assert 4.0 < bucket.book(50) <= 5.0
    other = SharedTokenBucket(conn_of(app_db), bucket="t:block", per_minute=600)
    other.book(0)
    asyncio.run(other.block(3.0))
    assert 3.5 < other.book(10) <= 4.0


def test_a_booking_too_far_away_is_given_back(app_db: Database) -> None:
    bucket = SharedTokenBucket(conn_of(app_db), bucket="t:far", per_minute=60)
    bucket.book(60)
    with pytest.raises(TimeoutError, match="away"):
        asyncio.run(bucket.take(30, max_wait_s=5))
    assert 9.0 < bucket.book(10) <= 10.0  # the refused 30 were not kept


def test_a_settlement_on_a_statement_connection_is_one_transaction_all_or_none(app_db: Database) -> None:
    # the limiters settle through `Database.global_statement`: the pipeline's statements, sent
    # before one Sync, are one implicit transaction (no BEGIN and COMMIT round trips), so a failing
    # one takes the others back with it, and nothing is left open on the pooled connection
    from leadgen_core.db.pool import transactions_opened
    from leadgen_core.errors import DatabaseError
    from leadgen_core.spend.ratelimit import apply_adjustments

    one = lambda: app_db.global_statement()  # noqa: E731
    bucket = SharedTokenBucket(conn_of(app_db), bucket="t:one", per_minute=600, one=one)
    bucket.book(600)  # the bucket is empty: the next 600 wait a minute
    before = transactions_opened()
    apply_adjustments(one, bucket.adjustments(300) + [bucket.adjust_params(ceiling=1_000)])
    assert transactions_opened() == before + 1
    assert bucket.book(0) == 0.0 and bucket.book(300) == pytest.approx(0.0, abs=0.3)  # the 300 came back
    bad = {**bucket.adjust_params(delta=1), "ceiling": "not a number"}
    with pytest.raises(DatabaseError):
        apply_adjustments(one, bucket.adjustments(600) + [bad])
    assert 5.0 < bucket.book(60) <= 6.0  # the 600 before the failure were not given
    with app_db.global_statement() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def _spend(app_dsn: str, n: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = Database(app_dsn, min_size=1, max_size=2, name="tokens").open()
    # each booking at the time the server made it due (tests/stamped.py), not when the process woke
    bucket = StampedBucket(lambda: db.global_transaction(), bucket="t:procs", per_minute=120_000, capacity=2_000)

    async def main() -> None:
        for _ in range(n):
            await bucket.take(500)

    asyncio.run(main())
    queue.put(bucket.stamps)
    db.close()


def test_token_limit_holds_across_processes(clean_db) -> None:  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(clean_db.app_dsn, 8, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    stamps = sorted(queue.get(timeout=60) + queue.get(timeout=60))
    for p in procs:
        p.join(30)
    # 8,000 tokens at 2,000/s with 2,000 in the bucket: at least ~3 s, whatever the processes do
    assert len(stamps) == 16 and stamps[-1] - stamps[0] >= 2.7
    assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 4 + 4 + 1


SMALL = TierLimits(rpm=600, tpm=60_000)  # 1,000 tokens a second


async def _burst(sim: OpenAISim, limiter: OpenAILimiter | None, n: int) -> list[object]:
    extractor = OpenAIExtractor(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0, timeout_s=30)
    extractor.limiter = limiter
    async with extractor:
        calls = [extractor.complete_text(system="Be brief.", user=f"Lead {i}.", max_tokens=5_000) for i in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_without_the_limiter_a_burst_meets_429s() -> None:
    with OpenAISim(api_key=KEY, profile=REALISTIC, limits=SMALL) as sim:
        results = asyncio.run(_burst(sim, None, 13))
    assert any(isinstance(r, Exception) for r in results)
    assert sim.rate_limited > 0


def test_the_limiter_paces_a_burst_under_the_tokens_per_minute(app_db: Database) -> None:
    with OpenAISim(api_key=KEY, profile=REALISTIC, limits=SMALL) as sim:
        limiter = OpenAILimiter(conn_of(app_db), api_key=KEY, model="gpt-4o-mini", rpm=600, tpm=60_000)
        started = time.monotonic()
        results = asyncio.run(_burst(sim, limiter, 13))
        took = time.monotonic() - started
    assert not [r for r in results if isinstance(r, Exception)]
    assert sim.rate_limited == 0
    assert took >= 3.0  # 13 × ~5,020 tokens against 60,000 a minute: the 13th waited ~5 s for the refill


class LateBurst:
    """A limiter whose bookings made at once reach OpenAI DELAY_S late (a burst opening new
    connections on a busy event loop), while a booking that waited its turn is sent at once."""

    def __init__(self, inner: OpenAILimiter, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    async def reserve(self, tokens: int) -> object:
        started = time.monotonic()
        reservation = await self.inner.reserve(tokens)
        if time.monotonic() - started < 0.3:
            await asyncio.sleep(self.delay_s)
        return reservation

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_burst_that_reaches_openai_late_does_not_make_a_waiting_call_early(app_db: Database) -> None:
    # OpenAI's bucket refills from the burst's first arrival, ours from its first booking. 11 calls
    # booked at once arrive 0.4 s late; the 12th waited for the refill and is sent at once. OpenAI
    # admits it 1.14 s of refill after the burst's arrival. Without the limiter's arrival allowance
    # it waits 1.22 s and arrives 0.3 s of refill early (a 429); with it, it waits 2.22 s and
    # arrives with 0.7 s to spare (for a loaded machine's late burst)
    from leadgen_core.spend.openai_limiter import ARRIVAL_ALLOWANCE_S

    assert ARRIVAL_ALLOWANCE_S == 1.0
    with OpenAISim(api_key=KEY, profile=REALISTIC, limits=SMALL) as sim:
        limiter = OpenAILimiter(conn_of(app_db), api_key=KEY, model="gpt-4o-mini", rpm=600, tpm=60_000)
        extractor = OpenAIExtractor(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0, timeout_s=30)
        extractor.limiter = LateBurst(limiter, 0.4)  # type: ignore[assignment]

        async def burst() -> list[object]:
            async with extractor:
                calls = [extractor.complete_text(system="Be brief.", user=f"Lead {i}.", max_tokens=5_080)
                         for i in range(12)]  # fmt: skip
                return await asyncio.gather(*calls, return_exceptions=True)

        results = asyncio.run(burst())
        statuses = [r.status for r in sim.log]
    assert not [r for r in results if isinstance(r, Exception)]
    assert statuses == [200] * 12 and sim.rate_limited == 0


def test_a_key_spent_elsewhere_is_honoured_through_the_429_reset(app_db: Database) -> None:
    with OpenAISim(api_key=KEY, profile=REALISTIC, limits=SMALL) as sim:
        other = openai.OpenAI(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0)
        other.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], max_completion_tokens=59_000
        )
        limiter = OpenAILimiter(conn_of(app_db), api_key=KEY, model="gpt-4o-mini", rpm=600, tpm=60_000)
        started = time.monotonic()
        results = asyncio.run(_burst(sim, limiter, 1))
        took = time.monotonic() - started
        assert not isinstance(results[0], Exception)
        assert sim.rate_limited == 1  # refused once, then waited for the named reset
        assert took >= 1.0
        # the answer's x-ratelimit-remaining-tokens now bounds the bucket: a booking of a minute's
        # worth waits for the refill, which it would not if the bucket still thought itself full
        assert limiter.tokens.book(59_000) > 50


def test_a_429s_retry_after_shuts_the_bucket_for_as_long_as_it_says(app_db: Database) -> None:
    # the 429 says "try again later" and Retry-After: 3 (no reset header): the retry waits 3 s, not 1
    with OpenAISim(api_key=KEY, faults=FaultConfig(rate_limit_per_s=1, retry_after_s=3)) as sim:
        limiter = OpenAILimiter(conn_of(app_db), api_key=KEY, model="gpt-4o-mini", rpm=600, tpm=60_000)
        extractor = OpenAIExtractor(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0)
        extractor.limiter = limiter

        async def twice() -> float:
            async with extractor:
                await extractor.complete_text(system="s", user="u", max_tokens=5)
                started = time.monotonic()
                await extractor.complete_text(system="s", user="u", max_tokens=5)
                return time.monotonic() - started

        took = asyncio.run(twice())
        statuses = [r.status for r in sim.log]
    assert statuses == [200, 429, 200] and took >= 2.9


class CountingLimiter:
    """The limiter's interface, counting what the extractor books and gives back."""

    def __init__(self) -> None:
        self.reserved = self.released = self.settled = 0

    async def reserve(self, tokens: int) -> int:
        self.reserved += 1
        return tokens

    async def release(self, reservation: int) -> None:
        self.released += 1

    async def settle(self, reservation: int, *, counted: int, headers: object = None) -> None:
        self.settled += 1

    async def observe(self, headers: object) -> None:
        return None

    async def refused(self, *, kind: str | None, message: str | None, headers: object) -> float:
        return 0.0


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on exit: connecting is refused


async def _ask(extractor: OpenAIExtractor, limiter: CountingLimiter) -> None:
    extractor.limiter = limiter  # type: ignore[assignment]
    await extractor.complete_text(system="s", user="u", max_tokens=5)


def test_a_refused_connection_is_tried_again_and_its_bookings_given_back() -> None:
    """Nothing was sent, so nothing can be billed: the SDK's own retries (off on the limiter's
    path) are made by the extractor, each booking given back."""
    limiter = CountingLimiter()
    extractor = OpenAIExtractor(base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=KEY, max_retries=2)
    with pytest.raises(Exception, match="connection error"):
        asyncio.run(_ask(extractor, limiter))
    assert (limiter.reserved, limiter.released, limiter.settled) == (3, 3, 0)


def test_a_connection_dropped_after_sending_is_not_sent_again() -> None:
    """A server that reads the request and hangs up may have processed it: one attempt, and its
    booking is kept (the tokens may have been counted)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    seen: list[int] = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            seen.append(1)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    limiter = CountingLimiter()
    port = server.getsockname()[1]
    extractor = OpenAIExtractor(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=2)
    try:
        with pytest.raises(Exception, match="connection error"):
            asyncio.run(_ask(extractor, limiter))
    finally:
        server.close()
    assert len(seen) == 1
    assert (limiter.reserved, limiter.released) == (1, 0)
