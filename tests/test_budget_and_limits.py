"""The budget ledger, the spender and the shared rate limiter against a real Postgres.

Real: Postgres, the application role (the ledger is tenant-owned, under RLS), separate OS
processes for the concurrency tests. Vendor calls are plain async functions that count their
invocations: no HTTP is involved here.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import date, timedelta

import psycopg
import pytest

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import Database
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.context import EnrichContext, build_spender
from leadgen_core.errors import BudgetExhausted
from leadgen_core.settings import Settings
from leadgen_core.spend import budget
from leadgen_core.spend.spender import DryRunSkipped, Spender
from tests.conftest import add_tenant
from tests.stamped import StampedLimiter

DAY = date(2026, 3, 2)


def _race(app_dsn: str, workers: int, attempts: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One 'run': WORKERS asyncio workers each trying ATTEMPTS one-unit reservations, cap 10."""
    db = Database(app_dsn, min_size=2, max_size=8, name="race").open()
    ok = 0

    async def worker() -> None:
        nonlocal ok
        for _ in range(attempts):
            try:
                await asyncio.to_thread(_reserve_one, db)
                ok += 1
            except BudgetExhausted:
                pass

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(workers)))

    asyncio.run(main())
    db.close()
    queue.put(ok)


def _reserve_one(db: Database) -> None:
    with db.tenant_transaction("alpha") as conn:
        budget.reserve(conn, tenant_id="alpha", day=DAY, vendor="lusha", units=1, cap=10)


def test_budget_race_never_exceeds_the_cap(clean_db, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(clean_db.app_dsn, 32, 3, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    granted = queue.get(timeout=5) + queue.get(timeout=5)
    assert granted == 10
    rows = owner_conn.execute("SELECT units, calls FROM vendor_usage WHERE tenant_id = 'alpha'").fetchall()
    assert rows == [(10, 10)]


def test_release_returns_uncharged_units(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    with app_db.tenant_transaction("alpha") as conn:
        assert budget.reserve(conn, tenant_id="alpha", day=DAY, vendor="zerobounce", units=7, cap=10) == 7
        with pytest.raises(BudgetExhausted):
            budget.reserve(conn, tenant_id="alpha", day=DAY, vendor="zerobounce", units=4, cap=10)
        budget.release(conn, tenant_id="alpha", day=DAY, vendor="zerobounce", units=3)
        assert budget.reserve(conn, tenant_id="alpha", day=DAY, vendor="zerobounce", units=6, cap=10) == 10


def spender(db: Database, **kw: object) -> Spender:
    return Spender(
        tenant_id="alpha",
        caps={"tavily": 5, "openai": 1000},
        tenant_conn=lambda: db.tenant_transaction("alpha"),
        global_conn=lambda: db.global_transaction(),
        tenant_pipe=lambda: db.tenant_pipeline("alpha"),  # as the stages do: the record in one round trip
        statement_conn=db.global_statement,  # and the opening in one statement
        **({"clock": lambda: DAY} | kw),  # type: ignore[arg-type]
    )


def test_spender_caches_settles_and_degrades(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    calls = 0

    async def vendor() -> tuple[dict[str, str], int]:
        nonlocal calls
        calls += 1
        return {"answer": "42"}, 1

    async def scenario() -> None:
        s = spender(app_db)
        first = await s.call(vendor="tavily", request={"q": "acme"}, estimate=2, run=vendor)
        again = await s.call(vendor="tavily", request={"q": "acme"}, estimate=2, run=vendor)
        assert (first.cached, again.cached, again.value, calls) == (False, True, {"answer": "42"}, 1)
        for i in range(4):
            await s.call(vendor="tavily", request={"q": i}, estimate=1, run=vendor)
        with pytest.raises(BudgetExhausted):
            await s.call(vendor="tavily", request={"q": "one too many"}, estimate=1, run=vendor)

    asyncio.run(scenario())
    assert calls == 5
    assert owner_conn.execute("SELECT units FROM vendor_usage WHERE vendor = 'tavily'").fetchone() == (5,)


def test_a_call_charged_past_its_estimate_and_the_cap_is_recorded_whole(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    # the settlement runs in the answer's pipelined transaction, its over-the-cap part in a savepoint
    add_tenant(owner_conn, "alpha")

    async def dear() -> tuple[dict[str, str], int]:
        return {"answer": "dear"}, 9  # the vendor billed 9 against an estimate of 2 (cap 5)

    async def scenario() -> None:
        s = spender(app_db)
        paid = await s.call(vendor="tavily", request={"q": "dear"}, estimate=2, run=dear)
        assert (paid.units, paid.cached) == (9, False)
        with pytest.raises(BudgetExhausted):  # the money is spent: the next reservation is refused
            await s.call(vendor="tavily", request={"q": "next"}, estimate=1, run=dear)

    asyncio.run(scenario())
    assert owner_conn.execute("SELECT units FROM vendor_usage WHERE vendor = 'tavily'").fetchone() == (9,)
    assert owner_conn.execute("SELECT count(*) FROM spend_reservations").fetchone() == (0,)
    assert owner_conn.execute("SELECT units FROM vendor_response_cache WHERE vendor = 'tavily'").fetchone() == (9,)


def test_failed_call_releases_and_dry_run_forecasts(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")

    async def broken() -> tuple[dict[str, str], int]:
        raise RuntimeError("vendor fell over")

    async def never() -> tuple[dict[str, str], int]:
        raise AssertionError("a dry run must not call the vendor")

    async def scenario() -> Spender:
        s = spender(app_db)
        with pytest.raises(RuntimeError):
            await s.call(vendor="openai", request={"p": 1}, estimate=500, run=broken)
        dry = spender(app_db, dry_run=True)
        for i in range(3):
            with pytest.raises(DryRunSkipped):
                await dry.call(vendor="openai", request={"p": i + 10}, estimate=300, run=never)
        return dry

    dry = asyncio.run(scenario())
    assert dry.forecast.calls == {"openai": 3} and dry.forecast.units == {"openai": 900}
    assert owner_conn.execute("SELECT coalesce(sum(units), 0) FROM vendor_usage").fetchone() == (0,)


def test_a_backfill_of_three_dates_shares_todays_cap(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """Three old partition dates run now (a backfill) all draw on today's Singapore ledger."""
    add_tenant(owner_conn, "alpha")
    owner_conn.execute("INSERT INTO tenant_budgets VALUES ('alpha', 'tavily', 5)")
    calls = 0

    async def vendor() -> tuple[dict[str, str], int]:
        nonlocal calls
        calls += 1
        return {"answer": "42"}, 1

    async def night(day: date) -> int:
        ctx = EnrichContext(tenant_id="alpha", day=day, run_id=f"backfill-{day}", settings=Settings(),
                            vendors=VendorConfig(), tenant_conn=lambda: app_db.tenant_transaction("alpha"),
                            global_conn=lambda: app_db.global_transaction())  # fmt: skip
        spender = build_spender(ctx)  # what each stage of the partition's run builds
        paid = 0
        for i in range(4):
            try:
                await spender.call(vendor="tavily", request={"night": str(day), "q": i}, estimate=1, run=vendor)
                paid += 1
            except BudgetExhausted:
                pass
        return paid

    backfill = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    assert [asyncio.run(night(day)) for day in backfill] == [4, 1, 0]
    assert calls == 5
    ledger = owner_conn.execute("SELECT usage_date, units, calls FROM vendor_usage").fetchall()
    assert ledger == [(today_sg(), 5, 5)]


def test_ledger_day_follows_the_clock_and_a_reservation_settles_on_its_own_day(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    today = [DAY]

    async def over_midnight() -> tuple[dict[str, str], int]:
        today[0] = DAY + timedelta(days=1)  # the call ends after midnight SGT
        return {"answer": "42"}, 1  # charged 1 of the 3 reserved

    async def one_unit() -> tuple[dict[str, str], int]:
        return {"answer": "42"}, 1

    async def scenario() -> None:
        s = spender(app_db, clock=lambda: today[0])
        await s.call(vendor="tavily", request={"q": "late"}, estimate=3, run=over_midnight)
        for i in range(5):  # the new day has its own cap of 5
            await s.call(vendor="tavily", request={"q": i}, estimate=1, run=one_unit)
        with pytest.raises(BudgetExhausted):
            await s.call(vendor="tavily", request={"q": "sixth"}, estimate=1, run=one_unit)

    asyncio.run(scenario())
    ledger = owner_conn.execute("SELECT usage_date, units FROM vendor_usage ORDER BY usage_date").fetchall()
    assert ledger == [(DAY, 1), (DAY + timedelta(days=1), 5)]


def _hammer(app_dsn: str, n: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    db = Database(app_dsn, min_size=1, max_size=2, name="limiter").open()
    # each slot at the time the server scheduled it (tests/stamped.py), not when the process woke
    limiter = StampedLimiter(lambda: db.global_transaction(), bucket="test", rate_per_s=20, burst=1)

    async def main() -> None:
        for _ in range(n):
            await limiter.acquire()

    asyncio.run(main())
    queue.put(limiter.stamps)
    db.close()


def test_rate_limit_holds_across_processes(clean_db) -> None:  # type: ignore[no-untyped-def]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(clean_db.app_dsn, 20, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    stamps = sorted(queue.get(timeout=60) + queue.get(timeout=60))
    for p in procs:
        p.join(30)
    # 40 slots at 20/s across two processes span at least 1.95 s, and no 1-second window holds more than 21
    assert len(stamps) == 40 and stamps[-1] - stamps[0] >= 1.9
    assert max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps) <= 21


def test_app_role_cannot_write_companies_of_nobody_else(app_db: Database) -> None:
    with pytest.raises(Exception, match="permission denied"), app_db.global_transaction() as conn:
        conn.execute("DELETE FROM companies")
    with psycopg.connect(app_db._pool.conninfo) as raw:  # the same role, outside the pool
        assert raw.execute("SELECT current_user").fetchone()[0] != "postgres"


def test_vendor_rates_come_from_the_environment_with_documented_defaults(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.enrich.clients import DEFAULT_RATES, VendorConfig, vendor_rate
    from leadgen_core.settings import Settings

    monkeypatch.setenv("TAVILY_RPM", "1000")  # a production key
    s = Settings()
    assert vendor_rate("tavily", s).per_s == pytest.approx(1000 / 60)
    assert vendor_rate("tavily", s).burst == DEFAULT_RATES["tavily"].burst
    assert vendor_rate("lusha", s) == DEFAULT_RATES["lusha"]  # unset: the default
    assert VendorConfig(rates={"tavily": 2.0}).rate("tavily", s).per_s == 2.0  # the resource wins
    monkeypatch.setenv("LUSHA_RPM", "0")
    with pytest.raises(ValueError, match="LUSHA_RPM"):
        Settings()


def test_a_reservation_is_journaled_with_its_run_and_closed_with_the_answer(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """While a call is in flight its reservation is on record with the run that made it; the
    answer's cache row, what it means (RECORD) and the settlement land in one transaction."""
    add_tenant(owner_conn, "alpha")
    seen_in_flight: list[tuple] = []

    async def vendor() -> tuple[dict[str, str], int]:
        seen_in_flight.extend(owner_conn.execute("SELECT run_id, vendor, units FROM spend_reservations").fetchall())
        return {"answer": "42"}, 3

    def record(conn, value) -> None:  # type: ignore[no-untyped-def]
        conn.execute(
            "INSERT INTO email_verification_cache (email, status) VALUES ('a@acme.sg', %s)", (value["answer"],)
        )

    async def scenario() -> None:
        s = spender(app_db, run_id="run-1")
        await s.call(vendor="openai", request={"q": "acme"}, estimate=10, run=vendor, record=record)

    asyncio.run(scenario())
    assert seen_in_flight == [("run-1", "openai", 10)]
    assert owner_conn.execute("SELECT count(*) FROM spend_reservations").fetchone() == (0,)
    assert owner_conn.execute("SELECT units FROM vendor_usage WHERE vendor = 'openai'").fetchone() == (3,)
    assert owner_conn.execute("SELECT status FROM email_verification_cache").fetchone() == ("42",)
    assert owner_conn.execute("SELECT count(*) FROM vendor_response_cache").fetchone() == (1,)


def test_reservations_a_killed_run_left_open_become_uncertain(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """A run killed mid-call leaves its reservation open: the tenant's next run closes it as an
    uncertain charge (the vendor may or may not have billed it), so the ledger's certain units
    match what was answered and the cap is not eaten by estimates of calls that never finished."""
    add_tenant(owner_conn, "alpha")
    killed = spender(app_db, run_id="run-1")
    killed._reserve("openai", 400, "fingerprint-of-the-cut-call")  # reserved, then SIGKILL
    assert owner_conn.execute("SELECT units, uncertain_units FROM vendor_usage").fetchone() == (400, 0)
    assert spender(app_db, run_id="run-1").reconcile() == {}  # its own run: still alive, left alone
    later = spender(app_db, run_id="run-2")
    assert later.reconcile() == {"openai": 400}
    assert owner_conn.execute("SELECT units, uncertain_units FROM vendor_usage").fetchone() == (0, 400)
    assert owner_conn.execute("SELECT count(*) FROM spend_reservations").fetchone() == (0,)
    assert later.reconcile() == {}  # once
