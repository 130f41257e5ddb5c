"""Transient vendor failures are retried (`failed`), final answers are not (`degraded`).

Real: Postgres (the app role, RLS in force; `company_stage_status` and its attempt count; the
shared rate limiter's bucket), the night's assets materialised by Dagster, the vendor clients'
retries. Simulated: the websites and vendors (the sandbox cluster; ZeroBounce is made to answer
every request with a 5xx, then healed) and the registry (a small synthetic ACRA extract).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from leadgen_core.db.pool import Database
from leadgen_core.enrich.runner import error_outcome
from leadgen_core.errors import (
    BudgetExhausted,
    RateLimited,
    VendorAuthError,
    VendorResponseError,
    VendorUnavailable,
)
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.spend.ratelimit import MAX_WAIT_S, SharedRateLimiter
from leadgen_core.spend.spender import DryRunSkipped
from leadgen_dagster.assets.enrichment import email_verifications
from tests.enrich_helpers import NIGHT, q
from tests.test_dry_run import TENANT, cluster, night, run  # noqa: F401 - fixtures

OUTCOMES = [
    (VendorUnavailable("lusha", "HTTP 503 after 4 attempts"), "failed", "vendor_down:lusha"),
    (VendorUnavailable("zerobounce", "timed out"), "failed", "vendor_down:zerobounce"),
    (RateLimited("tavily", "429 after 4 attempts", retry_after=30), "failed", "rate_limited:tavily"),
    (TimeoutError("rate limiter vendor:openai: next slot is 300s away"), "failed", "rate_limited:queue"),
    (BudgetExhausted("lusha", "daily cap reached"), "degraded", "budget:lusha"),
    (DryRunSkipped("lusha", "dry run"), "degraded", "dry_run:lusha"),
    (VendorAuthError("tavily", "HTTP 401"), "degraded", "vendor_auth:tavily"),
    (VendorResponseError("openai", "not JSON"), "degraded", "vendor_response:openai"),
]


@pytest.mark.parametrize(("exc", "status", "reason"), OUTCOMES)
def test_transient_failures_are_failed_and_final_answers_degraded(exc: BaseException, status: str, reason: str) -> None:
    outcome = error_outcome(7, exc)
    assert (outcome.status, outcome.reason) == (status, reason)


def test_a_vendor_outage_leaves_items_failed_and_the_next_materialisation_retries_them(night, cluster) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    db, instance = night
    cluster.set_faults("zerobounce", FaultConfig(error_rate=1.0))  # every request a 5xx
    night_run = run(db, instance, cluster, NIGHT, dry_run=False)
    # Every address failed, so the stage failed (and Dagster's step retry tried it again): each try
    # left the companies failed, counted, never a final degraded.
    assert not night_run.success
    assert {e.step_key for e in night_run.all_events if e.event_type_value == "STEP_FAILURE"} == {"email_verifications"}
    down = q(db.owner_dsn, "SELECT company_id, status, reason, attempts FROM company_stage_status "
                           "WHERE stage = 'email_verifications'")  # fmt: skip
    tries = {attempts for *_, attempts in down}
    assert down and {(status, reason) for _, status, reason, _ in down} == {("failed", "vendor_down:zerobounce")}
    assert len(tries) == 1 and tries.pop() >= 1
    cluster.clear_faults()
    assert run(db, instance, cluster, [email_verifications], dry_run=False).success
    redone = dict(
        q(db.owner_dsn, "SELECT company_id, status || ':' || attempts FROM company_stage_status "
                        "WHERE stage = 'email_verifications'")
    )  # fmt: skip
    assert redone == {c: f"done:{attempts + 1}" for c, _, _, attempts in down}
    assert cluster.zerobounce.billable_units > 0


def test_a_slot_given_up_is_returned(app_db: Database) -> None:
    interval = MAX_WAIT_S * 1.5
    limiter = SharedRateLimiter(app_db.global_transaction, bucket=f"test:{TENANT}:timeout", rate_per_s=1 / interval)
    assert limiter.book() == 0.0  # the first slot is now; the next one is too far away to wait for
    with pytest.raises(TimeoutError):
        asyncio.run(limiter.acquire())
    assert limiter.book() == pytest.approx(interval, abs=5)  # not two intervals: the refused slot came back


def test_a_cancelled_waiter_returns_its_slot(app_db: Database) -> None:
    limiter = SharedRateLimiter(app_db.global_transaction, bucket=f"test:{TENANT}:cancel", rate_per_s=1 / 20)
    assert limiter.book() == 0.0

    async def cancel_a_waiter() -> None:
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.3)  # booked and sleeping towards its slot, 20 s away
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    started = time.monotonic()
    asyncio.run(cancel_a_waiter())
    elapsed = time.monotonic() - started
    assert limiter.book() == pytest.approx(20 - elapsed, abs=2)  # the waiter's slot, given back
