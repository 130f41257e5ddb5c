"""Lusha's plan quotas (hourly, daily) shared through Postgres, and the client paced by them.

Real: Postgres (the `rate_limit_windows` table under the application role, two limiter objects
standing for two processes), the Lusha simulator over loopback HTTP. Pure: the plan table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from leadgen_core.db.pool import Database
from leadgen_core.enrich.clients import lusha_quota, vendor_rate
from leadgen_core.errors import RateLimited
from leadgen_core.sandbox.lusha import LushaSim
from leadgen_core.settings import Settings
from leadgen_core.spend.ratelimit import MAX_WAIT_S, QuotaWindow, SharedQuota
from leadgen_core.vendors.lusha import CompanyRef, LushaClient

LUSHA_KEY = "sandbox-lusha-key"


def clear_of_a_window_edge(margin_s: float = 10.0) -> None:
    """Sleep past the next hour (and so day) boundary when it is less than MARGIN_S away: the
    windows are whole hours and days of the clock, and a test that spans an edge sees two."""
    left = 3_600 - time.time() % 3_600
    if left < margin_s:
        time.sleep(left + 0.5)


def an_hour_far_from_its_end(margin_s: float = MAX_WAIT_S + 60) -> int:
    """A window length of about an hour (seconds) whose current window ends more than MARGIN_S
    from now. A spent quota that resets within MAX_WAIT_S is waited for, not refused, so a test
    of the refusal near a whole hour's end (the windows are aligned to the clock) would see the
    wait; a window of 3,600 + k seconds ends elsewhere, and one of them far from now."""
    now = time.time()
    return next(w for w in range(3_600, 4_000) if w - now % w > margin_s)


def quota(db: Database, *windows: QuotaWindow, bucket: str = "quota:test") -> SharedQuota:
    return SharedQuota(lambda: db.global_transaction(), vendor="lusha", bucket=bucket, windows=windows)


def test_the_windows_are_shared_and_a_full_one_counts_nothing(app_db: Database) -> None:
    clear_of_a_window_edge()
    one, other = (quota(app_db, QuotaWindow(3, 3_600), QuotaWindow(5, 86_400)) for _ in range(2))
    assert [one.take(), other.take(), one.take()] == [0.0, 0.0, 0.0]
    wait = other.take()  # the hourly window is full for both "processes"
    assert 0 < wait <= 3_600
    assert one.used() == {3_600: 3, 86_400: 3}  # the refused request was counted nowhere
    daily = quota(app_db, QuotaWindow(10, 3_600), QuotaWindow(2, 86_400), bucket="quota:daily")
    assert [daily.take(), daily.take()] == [0.0, 0.0]
    assert 0 < daily.take() <= 86_400
    assert daily.used() == {3_600: 2, 86_400: 2}


def test_a_spent_quota_raises_rate_limited_instead_of_waiting_an_hour(app_db: Database) -> None:
    hour = an_hour_far_from_its_end()
    q = quota(app_db, QuotaWindow(1, hour))
    asyncio.run(q.acquire())
    with pytest.raises(RateLimited) as caught:
        asyncio.run(q.acquire())
    assert caught.value.vendor == "lusha" and MAX_WAIT_S < (caught.value.retry_after or 0) <= hour


@pytest.fixture
def sim() -> Iterator[LushaSim]:
    with LushaSim(api_key=LUSHA_KEY) as lusha:
        yield lusha  # type: ignore[misc]


def test_the_client_stops_at_the_quota_before_sending(app_db: Database, sim: LushaSim) -> None:
    q = quota(app_db, QuotaWindow(2, an_hour_far_from_its_end()), bucket="quota:lusha-client")

    async def main() -> None:
        async with LushaClient(base_url=sim.base_url, api_key=LUSHA_KEY) as client:
            client.pace = q.acquire
            for i in range(3):
                await client.find_contacts_bulk([CompanyRef(str(i), f"quota-firm-{i}.com.sg")], titles=[])

    with pytest.raises(RateLimited):
        asyncio.run(main())
    assert len(sim.log) == 2  # the third request was never sent


@pytest.mark.parametrize(
    ("plan", "windows", "per_minute"),
    [
        ("premium", [QuotaWindow(1_800, 3_600), QuotaWindow(18_000, 86_400)], 300),
        ("scale", [QuotaWindow(5_000, 3_600), QuotaWindow(50_000, 86_400)], 300),
        ("pro", [QuotaWindow(150, 3_600), QuotaWindow(1_500, 86_400)], 50),
        ("free", [QuotaWindow(100, 86_400)], 40),
        ("legacy", [QuotaWindow(600, 3_600), QuotaWindow(6_000, 86_400)], 300),  # docs.lusha.com user guide
    ],
)
def test_lusha_plan_sets_the_quota_and_the_pace(plan: str, windows: list[QuotaWindow], per_minute: int) -> None:
    settings = Settings(LUSHA_PLAN=plan)  # type: ignore[call-arg]
    assert lusha_quota(settings) == windows
    assert vendor_rate("lusha", settings).per_s == pytest.approx(per_minute / 60)
