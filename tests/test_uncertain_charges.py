"""Tavily and Lusha requests that timed out after they were sent: one request, an uncertain charge.
And a Retry-After longer than the stage has left: the item fails retryable instead of sleeping.

Real: Postgres (the tenant's budget ledger and stage outcomes under the application role), the
Tavily and Lusha simulators over loopback HTTP (slower than the client's timeout, so each request
reaches the vendor, is billed, and is answered too late), the clients as `open_toolkit` builds
them, the Spender, and the stages' own code (`company_search`, `LushaLookups`, `run_companies`).
Simulated: the vendors, whose request logs and billing counters are the truth compared with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from click.testing import CliRunner

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import Database
from leadgen_core.enrich import store
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.contacts_stage import LUSHA_CREDITS_ESTIMATE, LushaLookups
from leadgen_core.enrich.context import EnrichContext, open_toolkit
from leadgen_core.enrich.runner import run_companies
from leadgen_core.enrich.websearch import company_search
from leadgen_core.night.stage_status import Outcome
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.lusha import LushaSim
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.settings import Settings
from leadgen_core.spend import budget
from leadgen_dagster.cli import main
from tests.conftest import DbHandle, add_tenant
from tests.test_vendor_clients import refuse, settled_log

DAY = date(2026, 3, 2)
TAVILY_KEY = "sandbox-tavily-key"
LUSHA_KEY = "sandbox-lusha-key"
SLOW = FaultConfig(latency_ms=700)  # answers (and bills) after the client's 0.2 s timeout


@pytest.fixture
def tavily() -> Iterator[TavilySim]:
    sim = TavilySim(api_key=TAVILY_KEY, faults=SLOW).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def lusha() -> Iterator[LushaSim]:
    sim = LushaSim(api_key=LUSHA_KEY, faults=SLOW).start()
    try:
        yield sim
    finally:
        sim.stop()


def add_company(owner: Any, uen: str, domain: str) -> store.Company:
    row = owner.execute(
        "INSERT INTO companies (uen, name, website, website_domain, content_hash, first_seen, last_seen) "
        "VALUES (%s, %s, %s, %s, '\\x00', %s, %s) RETURNING company_id",
        (uen, f"Firm {uen} Pte Ltd", f"https://{domain}", domain, DAY, DAY),
    ).fetchone()
    return store.Company(int(row[0]), f"Firm {uen} Pte Ltd", f"https://{domain}", domain)


def context(db: Database, **vendors: Any) -> EnrichContext:
    return EnrichContext(
        tenant_id="alpha",
        day=DAY,
        run_id=None,
        settings=Settings(),
        vendors=VendorConfig(timeout_s=0.2, rates={"tavily": 100.0, "lusha": 100.0}, **vendors),
        tenant_conn=lambda: db.tenant_transaction("alpha"),
        global_conn=lambda: db.global_transaction(),
    )


def ledger(db: Database, vendor: str) -> budget.VendorSpend:
    with db.tenant_transaction("alpha") as conn:
        rows = budget.spend(conn, tenant_id="alpha", day=today_sg(), caps={vendor: 1_000})
    return next(r for r in rows if r.vendor == vendor)


def test_a_tavily_search_that_timed_out_is_sent_once_recorded_uncertain_and_left_failed(
    app_db: Database, owner_conn: Any, tavily: TavilySim
) -> None:
    add_tenant(owner_conn, "alpha")
    ctx = context(app_db, tavily_base_url=tavily.base_url, tavily_api_key=TAVILY_KEY)
    company = add_company(owner_conn, "T1", "acme-robotics.com.sg")

    async def night() -> list[Outcome]:
        async with open_toolkit(ctx, needs={"tavily"}) as kit:

            async def work(company_id: int) -> Outcome:
                await company_search(kit, company.name)
                return Outcome(company_id, "done")

            return await run_companies(kit, stage="crawl", company_ids=[company.company_id], work=work)

    (outcome,) = asyncio.run(night())
    logged = settled_log(tavily, gave_up=time.monotonic(), latency_s=0.7)  # the abandoned request, billed
    assert (outcome.status, outcome.reason) == ("failed", "charge_uncertain:tavily")  # retryable later
    assert [r.path for r in logged] == ["/search"]  # never re-sent, though the client allows 4 attempts
    assert tavily.billable_units == 1  # Tavily charged the search the client gave up on
    row = ledger(app_db, "tavily")
    assert (row.units, row.uncertain) == (0, 1)  # shown by `leadgen budget show` as uncertain


def test_a_lusha_bulk_lookup_that_timed_out_is_sent_once_recorded_uncertain_and_left_failed(
    app_db: Database, owner_conn: Any, lusha: LushaSim, clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_tenant(owner_conn, "alpha")
    ctx = context(app_db, lusha_base_url=lusha.base_url, lusha_api_key=LUSHA_KEY)
    companies = [add_company(owner_conn, f"L{i}", f"firm-{i}.com.sg") for i in (1, 2, 3)]

    async def night() -> list[Outcome]:
        async with open_toolkit(ctx, needs={"lusha"}) as kit:
            answers = await LushaLookups(kit).run(companies)

            async def work(company_id: int) -> Outcome:
                answer = answers[company_id]
                if isinstance(answer, BaseException):
                    raise answer
                return Outcome(company_id, "done")

            return await run_companies(kit, stage="contacts", company_ids=[c.company_id for c in companies], work=work)

    outcomes = asyncio.run(night())
    logged = settled_log(lusha, gave_up=time.monotonic(), latency_s=0.7)
    assert {(o.status, o.reason) for o in outcomes} == {("failed", "charge_uncertain:lusha")}
    assert len(logged) == 1  # the one bulk prospecting request; no re-send, no per-company retry
    row = ledger(app_db, "lusha")
    assert (row.units, row.uncertain) == (0, 3 * LUSHA_CREDITS_ESTIMATE)
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    shown = CliRunner().invoke(main, ["budget", "show", "--tenant", "alpha"], catch_exceptions=False)
    (line,) = [x for x in shown.output.splitlines() if x.startswith("lusha ")]
    assert line.split()[-1] == str(3 * LUSHA_CREDITS_ESTIMATE)  # the `uncertain` column


def test_a_retry_after_past_the_stage_deadline_leaves_the_item_failed_without_sleeping(
    app_db: Database, owner_conn: Any
) -> None:
    add_tenant(owner_conn, "alpha")
    first, second = add_company(owner_conn, "R1", "first-co.com.sg"), add_company(owner_conn, "R2", "second-co.com.sg")
    # one search, then "come back in 20 s": within Tavily's 60 s maximum, past the stage's 10 s
    with TavilySim(api_key=TAVILY_KEY, faults=FaultConfig(retry_after_s=20)) as sim:
        refuse(sim, after=1)  # counted, not a 1 s window a slow first search could outlast
        ctx = context(app_db, tavily_base_url=sim.base_url, tavily_api_key=TAVILY_KEY)
        # the 0.2 s timeout is for the slow simulators above: this one answers at once, however busy the machine
        ctx = dataclasses.replace(
            ctx, vendors=dataclasses.replace(ctx.vendors, timeout_s=5.0), deadline=time.monotonic() + 10.0
        )

        async def night() -> list[Outcome]:
            async with open_toolkit(ctx, needs={"tavily"}) as kit:

                async def work(company_id: int) -> Outcome:
                    await company_search(kit, first.name if company_id == first.company_id else second.name)
                    return Outcome(company_id, "done")

                done = await run_companies(kit, stage="crawl", company_ids=[first.company_id], work=work)
                return done + await run_companies(kit, stage="crawl", company_ids=[second.company_id], work=work)

        started = time.monotonic()
        outcomes = asyncio.run(night())
        elapsed = time.monotonic() - started
        statuses = [r.status for r in sim.log]
    assert [(o.status, o.reason) for o in outcomes] == [("done", None), ("failed", "rate_limited:tavily")]
    assert "outlast the stage's time budget" in (outcomes[1].error or "")
    assert statuses == [200, 429] and elapsed < 8.0  # no sleep through the 20 s, nor until the 10 s deadline
    row = ledger(app_db, "tavily")
    assert (row.units, row.uncertain) == (1, 0)  # the refused search's reservation was released


def test_a_lookup_failing_at_its_second_request_keeps_the_first_requests_bill(
    app_db: Database, owner_conn: Any
) -> None:
    """A Lusha lookup is a prospecting request, then a search-and-enrich request. When the second
    fails (here the account runs out of credits: HTTP 402), the first was billed all the same: the
    ledger keeps those credits, as Lusha's own counter does, and releases only the rest."""
    from leadgen_core.sandbox.lusha import SEARCH_CREDITS, people_at

    add_tenant(owner_conn, "alpha")
    domains = [f"firm-{i}.com.sg" for i in range(1, 8)]
    domain = next(d for d in domains if people_at(d))  # a company Lusha knows people at
    company = add_company(owner_conn, "P1", domain)
    sim = LushaSim(api_key=LUSHA_KEY).start()
    try:
        sim.credits = SEARCH_CREDITS * len(people_at(domain))  # the prospecting page, nothing more
        ctx = dataclasses.replace(
            context(app_db, lusha_base_url=sim.base_url, lusha_api_key=LUSHA_KEY),
            vendors=VendorConfig(timeout_s=5.0, rates={"lusha": 100.0}, lusha_base_url=sim.base_url,
                                 lusha_api_key=LUSHA_KEY),
        )  # fmt: skip

        async def night() -> Any:
            async with open_toolkit(ctx, needs={"lusha"}) as kit:
                return (await LushaLookups(kit).run([company]))[company.company_id]

        answer = asyncio.run(night())
    finally:
        sim.stop()
    assert isinstance(answer, BaseException)  # the lookup failed at its enrich request
    assert [r.path for r in sim.log] == ["/v3/contacts/prospecting", "/v3/contacts/search-and-enrich"]
    assert sim.billable_units > 0
    row = ledger(app_db, "lusha")
    assert (row.units, row.uncertain) == (sim.billable_units, 0)  # was (0, 0): the bill was lost
