"""The `realistic` sandbox profile's vendor limits, spoken to directly over HTTP.

Real: loopback HTTP servers (Lusha, ZeroBounce and its bulk host, Tavily) and a real httpx client
over real sockets; the limits are the documented ones in `leadgen_core.vendors.limits`. Simulated:
the vendors. Tests shrink long windows with the profile's time scale, or a custom Lusha quota,
so that an hourly or daily limit is reached in a few requests; the `demo` profile is checked to
stay free of these limits.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import pytest

from leadgen_core.sandbox.base import SimServer
from leadgen_core.sandbox.lusha import LushaSim, people_at
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.sandbox.zerobounce import ZeroBounceSim
from leadgen_core.vendors.limits import LushaPlan, LushaQuota

LUSHA_KEY, ZB_KEY, TAVILY_KEY = "sandbox-lusha-key", "sandbox-zerobounce-key", "sandbox-tavily-key"
S = TypeVar("S", bound=SimServer)


def realistic(time_scale: float = 1.0) -> SandboxProfile:
    return SandboxProfile(name=ProfileName.REALISTIC, time_scale=time_scale)


def running(sim: S) -> Iterator[S]:
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def prospect(http: httpx.Client, sim: LushaSim, domains: list[str], *, page: int = 0, size: int = 10) -> httpx.Response:
    body = {"pagination": {"page": page, "size": size}, "filters": {"companies": {"include": {"domains": domains}}}}
    return http.post(f"{sim.base_url}/v3/contacts/prospecting", json=body, headers={"api_key": LUSHA_KEY})


# --- Lusha ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quota", "window", "message"),
    [
        (LushaQuota(per_minute=3, per_hour=None, per_day=100), "minute", "Limit: 3 calls per minute"),
        (LushaQuota(per_minute=100, per_hour=3, per_day=100), "hourly", "Hourly API rate limit exceeded. Limit: 3"),
        (LushaQuota(per_minute=100, per_hour=None, per_day=3), "daily", "Daily API quota limit exceeded. Limit 3"),
    ],
)
def test_lusha_plan_windows_answer_the_documented_429(
    http: httpx.Client, quota: LushaQuota, window: str, message: str
) -> None:
    for sim in running(LushaSim(profile=realistic(), plan=quota)):
        answers = [prospect(http, sim, ["acme.com.sg"]) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[0].headers[f"x-rate-limit-{window}"] == "3"
        assert answers[2].headers[f"x-{window}-requests-left"] == "0"
        assert answers[2].headers[f"x-{window}-usage"] == "3"
        body = answers[3].json()
        assert body["statusCode"] == 429 and message in body["message"]
        assert 1 <= int(answers[3].headers["Retry-After"]) <= {"minute": 60, "hourly": 3600, "daily": 86400}[window]
        assert sim.billable_units == sum(a.json()["billing"]["creditsCharged"] for a in answers[:3])


def test_lusha_per_second_limit_and_plan_table(http: httpx.Client) -> None:
    for sim in running(LushaSim(profile=realistic(), plan=LushaPlan.SCALE)):
        assert sim.quota is not None
        sim.quota.clock = lambda: 1_000.0  # every request in the same instant: one second's window, however slow
        answers = [prospect(http, sim, ["acme.com.sg"]) for _ in range(30)]
        assert [a.status_code for a in answers] == [200] * 25 + [429] * 5  # 25 requests a second
        assert "Limit: 25 calls per second" in answers[25].json()["message"]
        assert answers[25].headers["Retry-After"] == "1"
        assert [r.status for r in sim.log] == [200] * 25 + [429] * 5
        assert all(r.billable_units == 0 for r in sim.log[25:]) and sim.log[0].billable_units > 0
    for sim in running(LushaSim(profile=realistic(time_scale=5), plan=LushaPlan.SCALE)):
        headers = prospect(http, sim, ["acme.com.sg"]).headers
        assert (headers["x-rate-limit-minute"], headers["x-rate-limit-hourly"]) == ("1500", "25000")
        assert headers["x-rate-limit-daily"] == "250000"
    for sim in running(LushaSim(profile=realistic(), plan=LushaPlan.PREMIUM)):
        headers = prospect(http, sim, ["acme.com.sg"]).headers
        assert (headers["x-rate-limit-hourly"], headers["x-rate-limit-daily"]) == ("1800", "18000")


def test_lusha_demo_profile_has_no_quota(http: httpx.Client) -> None:
    for sim in running(LushaSim(plan=LushaQuota(per_minute=1, per_hour=1, per_day=1))):
        answers = [prospect(http, sim, ["acme.com.sg"]) for _ in range(5)]
        assert {a.status_code for a in answers} == {200}
        assert "x-rate-limit-daily" not in answers[0].headers


def test_lusha_takes_up_to_100_companies_and_pages_through_them(http: httpx.Client) -> None:
    domains = [f"firm-{i}.com.sg" for i in range(101)]
    for sim in running(LushaSim(profile=realistic(time_scale=100))):
        too_many = prospect(http, sim, domains)
        assert too_many.status_code == 400 and "at most 100" in too_many.json()["errors"][0]
        expected = [p.id for d in domains[:100] for p in people_at(d)]
        pages: list[Any] = []
        for page in range(10):
            answer = prospect(http, sim, domains[:100], page=page, size=100).json()
            pages += answer["results"]
            assert answer["pagination"]["total"] == len(expected)
            if (page + 1) * 100 >= len(expected):
                break
        assert [p["id"] for p in pages] == expected and len(expected) > 100
        assert sim.billable_units == len(expected)  # one search credit per contact returned


# --- ZeroBounce -------------------------------------------------------------------------------
def batch(http: httpx.Client, url: str, emails: list[str]) -> httpx.Response:
    body = {"api_key": ZB_KEY, "email_batch": [{"email_address": e, "ip_address": None} for e in emails]}
    return http.post(f"{url}/v2/validatebatch", json=body)


def test_zerobounce_batch_lives_on_the_bulk_host(http: httpx.Client) -> None:
    for sim in running(ZeroBounceSim(profile=realistic(time_scale=100))):
        assert sim.bulk_base_url != sim.base_url
        assert batch(http, sim.base_url, ["valid@example.com"]).status_code == 404
        ok = batch(http, sim.bulk_base_url, ["valid@example.com", "unknown@example.com"])
        assert ok.status_code == 200 and [r["status"] for r in ok.json()["email_batch"]] == ["valid", "unknown"]
        assert sim.billable_units == 1 and len(sim.requests_to("/v2/validatebatch")) == 2
    for sim in running(ZeroBounceSim()):  # demo: the old single-host configuration still answers
        assert batch(http, sim.base_url, ["valid@example.com"]).status_code == 200
        assert batch(http, sim.bulk_base_url, ["valid@example.com"]).status_code == 200


def test_zerobounce_batch_five_a_minute_then_blocked_ten_minutes(http: httpx.Client) -> None:
    for sim in running(ZeroBounceSim(profile=realistic())):
        answers = [batch(http, sim.bulk_base_url, ["valid@example.com"]) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert "blocked" in answers[5].json()["error"]
        assert 590 <= int(answers[5].headers["Retry-After"]) <= 600
        assert sim.billable_units == 5
    for sim in running(ZeroBounceSim(profile=realistic(time_scale=600))):  # 3,000/min, a 1 s block
        assert sim.batch_quota.windows[0].limit == 3000 and sim.batch_quota.windows[0].block_s == 1.0


def test_zerobounce_batch_takes_time_in_proportion_to_its_size(http: httpx.Client) -> None:
    emails = [f"person{i}@firm.com.sg" for i in range(200)]
    for sim in running(ZeroBounceSim(profile=realistic(time_scale=50))):
        started = time.monotonic()
        assert batch(http, sim.bulk_base_url, emails).status_code == 200
        full = time.monotonic() - started
        started = time.monotonic()
        assert batch(http, sim.bulk_base_url, emails[:2]).status_code == 200
        small = time.monotonic() - started
    assert 0.7 <= full <= 2.5  # 35-70 s unscaled for a full batch (0.7-1.4 s), with a second for a busy machine
    # a hundredth of the full batch's time (~10 ms), far below a third of it: a delay independent of
    # the size would take half to twice as long as the full batch's
    assert small < full / 3


def test_zerobounce_single_validate_takes_one_to_thirty_seconds(http: httpx.Client) -> None:
    for sim in running(ZeroBounceSim(profile=realistic(time_scale=50))):
        params = {"api_key": ZB_KEY, "email": "valid@example.com", "ip_address": ""}
        took = []
        for _ in range(5):
            started = time.monotonic()
            assert http.get(f"{sim.base_url}/v2/validate", params=params).status_code == 200
            took.append((time.monotonic() - started) * 50)
    assert all(1.0 <= t <= 31 for t in took)


def test_zerobounce_unknown_rule_blocks_the_bulk_host_for_an_hour(http: httpx.Client) -> None:
    for sim in running(ZeroBounceSim(profile=realistic(time_scale=100))):
        exempt = [batch(http, sim.bulk_base_url, ["greylisted@example.com"] * 21) for _ in range(3)]
        assert [a.status_code for a in exempt] == [200] * 3  # greylisted unknowns do not count
    for sim in running(ZeroBounceSim(profile=realistic())):
        answers = [batch(http, sim.bulk_base_url, ["unknown@example.com"] * 21) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert 3590 <= int(answers[2].headers["Retry-After"]) <= 3600


# --- Tavily -----------------------------------------------------------------------------------
def search(http: httpx.Client, sim: TavilySim) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TAVILY_KEY}"}
    return http.post(f"{sim.base_url}/search", json={"query": "Acme Singapore official website"}, headers=headers)


def test_tavily_key_kind_sets_the_requests_per_minute(http: httpx.Client) -> None:
    # a time scale of 0.05 turns the development key's 100/min into 5/min
    for sim in running(TavilySim(profile=realistic(time_scale=0.05), key_kind="development")):
        answers = [search(http, sim) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert answers[5].json() == {"detail": {"error": "Your request has been blocked due to excessive requests."}}
        assert 1 <= int(answers[5].headers["Retry-After"]) <= 60
    production = TavilySim(profile=realistic())
    assert production.quota is not None and production.quota.windows[0].limit == 1000
    assert TavilySim().quota is None
    with pytest.raises(ValueError, match="unknown Tavily key kind"):
        TavilySim(key_kind="staging")
