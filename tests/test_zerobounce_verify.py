"""ZeroBounce in the verify stage: single or batch mode, the bulk host, and no blind re-send.

Real: Postgres (the budget ledger under the application role, the verification cache), the
`realistic` ZeroBounce simulator and its bulk host over loopback HTTP, the product's client as
`open_toolkit` builds it, and the stage's own sender (`_Batches`). Simulated: ZeroBounce, whose
billable counter is the truth the ledger is compared with. The time scale shortens the
documented 70 s batch so that a batch outlasts a shortened client timeout within a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import Database
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.context import EnrichContext, open_toolkit
from leadgen_core.enrich.runner import error_outcome
from leadgen_core.enrich.verify_stage import _Batches
from leadgen_core.errors import ChargeUncertain
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.zerobounce import ZeroBounceSim
from leadgen_core.settings import Settings
from leadgen_core.spend import budget
from tests.conftest import add_tenant

DAY = date(2026, 3, 2)
ZB_KEY = "sandbox-zerobounce-key"
EMAILS = [f"person{i}@firm-{i % 7}.com.sg" for i in range(200)]


def started_sim(time_scale: float) -> Iterator[ZeroBounceSim]:
    zb = ZeroBounceSim(api_key=ZB_KEY, profile=SandboxProfile(name=ProfileName.REALISTIC, time_scale=time_scale))
    zb.start()
    try:
        yield zb
    finally:
        zb.stop()


@pytest.fixture
def sim() -> Iterator[ZeroBounceSim]:
    # time scale 100: a full batch of 200 takes 0.35-0.7 s instead of 35-70 s
    yield from started_sim(100)


@pytest.fixture
def slow_sim() -> Iterator[ZeroBounceSim]:
    # time scale 20: a single validation answers in 50-250 ms (1-5 s documented), so requests kept
    # in flight together overlap whatever the client's own overhead on a busy machine
    yield from started_sim(20)


def context(db: Database, sim: ZeroBounceSim, tenant: str = "alpha", **config: Any) -> EnrichContext:
    vendors = VendorConfig(
        zerobounce_base_url=sim.base_url,
        zerobounce_api_key=ZB_KEY,
        zerobounce_bulk_base_url=sim.bulk_base_url,
        rates={"zerobounce": 100.0},
        **config,
    )
    return EnrichContext(
        tenant_id=tenant,
        day=DAY,
        run_id=None,
        settings=Settings(ZEROBOUNCE_MAX_VERIFICATIONS=10_000),  # type: ignore[call-arg]
        vendors=vendors,
        tenant_conn=lambda: db.tenant_transaction(tenant),
        global_conn=lambda: db.global_transaction(),
    )


def ledger(db: Database) -> budget.VendorSpend:
    """Today's ZeroBounce row: the ledger counts the Singapore day the money is spent."""
    with db.tenant_transaction("alpha") as conn:
        rows = budget.spend(conn, tenant_id="alpha", day=today_sg(), caps={"zerobounce": 10_000})
    return next(r for r in rows if r.vendor == "zerobounce")


async def send(ctx: EnrichContext, *, batch: bool, emails: list[str]) -> _Batches:
    async with open_toolkit(ctx, needs={"zerobounce"}) as kit:
        sender = _Batches(kit)
        if batch:
            await sender.verify(emails)
        await asyncio.gather(*(sender.verify_one(e) for e in (sender.retry_singly if batch else emails)))
        return sender


def test_a_batch_that_timed_out_is_paid_once_recorded_uncertain_and_retried_singly(
    app_db: Database, owner_conn: Any, sim: ZeroBounceSim
) -> None:
    add_tenant(owner_conn, "alpha")
    ctx = context(app_db, sim, zerobounce_batch_timeout_s=0.2)
    sender = asyncio.run(send(ctx, batch=True, emails=EMAILS))
    batches = sim.requests_to("/v2/validatebatch")
    singles = sim.requests_to("/v2/validate")
    assert len(batches) == 1  # never re-sent, though the client allows 4 attempts
    assert sim.requests_to("/v2/validatebatch") == sim.bulk.requests_to("/v2/validatebatch")  # the bulk host
    assert sorted(r.query["email"][0] for r in singles) == sorted(EMAILS)  # then one by one
    assert set(sender.status) == {e.lower() for e in EMAILS} and not sender.problem
    row = ledger(app_db)
    batch_charge = batches[0].billable_units
    assert batch_charge > 0  # ZeroBounce charged the batch the client gave up on
    assert row.uncertain == len(EMAILS)  # the batch's reservation is shown as uncertain
    assert row.units == sum(r.billable_units for r in singles)  # the singles, as billed
    assert sim.billable_units == row.units + batch_charge <= row.units + row.uncertain


@pytest.mark.parametrize("in_flight", [1, 6])
def test_single_mode_keeps_the_configured_number_in_flight_and_the_ledger_matches_the_bill(
    app_db: Database, owner_conn: Any, slow_sim: ZeroBounceSim, in_flight: int
) -> None:
    sim = slow_sim
    add_tenant(owner_conn, "alpha")
    emails = EMAILS[:24]
    ctx = context(app_db, sim)
    ctx = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"zerobounce_in_flight": in_flight}))
    sender = asyncio.run(send(ctx, batch=False, emails=emails))
    assert len(sim.requests_to("/v2/validate")) == 24 and not sim.requests_to("/v2/validatebatch")
    assert set(sender.status) == set(emails)
    # never more than IN_FLIGHT at once, and more than one when allowed (the answers take 50-250 ms)
    assert sim.peak_in_flight <= in_flight and (in_flight == 1 or sim.peak_in_flight >= 3)
    row = ledger(app_db)
    assert row.units == sim.billable_units and row.uncertain == 0


def test_batch_mode_goes_to_the_bulk_host_and_settles_to_the_bill(
    app_db: Database, owner_conn: Any, sim: ZeroBounceSim
) -> None:
    add_tenant(owner_conn, "alpha")
    sender = asyncio.run(send(context(app_db, sim), batch=True, emails=EMAILS[:50]))
    assert len(sim.bulk.requests_to("/v2/validatebatch")) == 1 and not sim.requests_to("/v2/validate")
    assert not sender.retry_singly and len(sender.status) == 50
    row = ledger(app_db)
    assert row.units == sim.billable_units and row.uncertain == 0


def test_an_uncertain_charge_leaves_the_item_failed_for_a_later_single_retry() -> None:
    outcome = error_outcome(7, ChargeUncertain("zerobounce", "GET /v2/validate: timed out after sending"))
    assert (outcome.status, outcome.reason) == ("failed", "charge_uncertain:zerobounce")
