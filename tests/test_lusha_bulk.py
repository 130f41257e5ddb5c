"""Lusha bulk lookups: up to 100 companies a request, credits as Lusha bills them, optional billing.

Real: the Lusha simulator over loopback HTTP (its billable counter is the truth the client's
credits are compared with) and the product's client. At the transport (httpx MockTransport): the
answers that leave out the optional `billing` field, which the simulator never does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leadgen_core.sandbox.lusha import LushaSim, people_at
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.vendors.lusha import CompanyRef, LushaBulkResult, LushaClient

LUSHA_KEY = "sandbox-lusha-key"
DOMAINS = [f"bulk-firm-{i}.com.sg" for i in range(100)]


@pytest.fixture(scope="module")
def sim() -> Iterator[LushaSim]:
    lusha = LushaSim(api_key=LUSHA_KEY, profile=SandboxProfile(name=ProfileName.REALISTIC, time_scale=10))
    lusha.start()
    try:
        yield lusha
    finally:
        lusha.stop()


def bulk(base_url: str, refs: list[CompanyRef], *, transport: httpx.AsyncBaseTransport | None = None) -> Any:
    async def main() -> LushaBulkResult:
        http = httpx.AsyncClient(transport=transport) if transport else None
        async with LushaClient(base_url=base_url, api_key=LUSHA_KEY, http=http) as client:
            return await client.find_contacts_bulk(refs, titles=[])

    return asyncio.run(main())


def test_a_hundred_companies_take_a_few_requests_and_credits_match_the_bill(sim: LushaSim) -> None:
    sim.reset_log()
    refs = [CompanyRef(str(i), f"https://www.{d}/about") for i, d in enumerate(DOMAINS)]
    result = bulk(sim.base_url, refs)
    prospecting = sim.requests_to("/v3/contacts/prospecting")
    enrich = sim.requests_to("/v3/contacts/search-and-enrich")
    staff = [p for d in DOMAINS for p in people_at(d)]
    # one search of all 100 domains, paged 100 people at a time; reveals in requests of <= 100
    assert len(prospecting) == -(-len(staff) // 100) and len(prospecting) < 10
    assert all(r.json()["filters"]["companies"]["include"]["domains"] == sorted(DOMAINS) for r in prospecting)
    assert all(len(r.json()["contacts"]) <= 100 for r in enrich) and len(enrich) >= 1
    assert len(prospecting) + len(enrich) < 20  # against 100-200 requests one company at a time
    for i, domain in enumerate(DOMAINS):  # every company gets its own people (up to 5, with an email)
        expected = [p.email for p in people_at(domain) if p.email][:5]
        assert [c.email for c in result.contacts.get(str(i), ())] == expected
    assert result.credits_charged == sim.billable_units > 0


def test_more_than_a_hundred_companies_is_refused_before_any_request(sim: LushaSim) -> None:
    sim.reset_log()
    refs = [CompanyRef(str(i), f"firm-{i}.com.sg") for i in range(101)]
    with pytest.raises(ValueError, match="between 1 and 100"):
        bulk(sim.base_url, refs)
    assert sim.log == []


def _without_billing(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if request.url.path.endswith("/prospecting"):
        if "empty.com.sg" in body["filters"]["companies"]["include"]["domains"]:
            return httpx.Response(200, json={"requestId": "r1", "results": []})
        preview = {
            "id": "v1.x",
            "company": {"domain": "one.com.sg"},
            "canReveal": [{"field": "emails", "credits": 1}],
        }
        return httpx.Response(200, json={"requestId": "r2", "results": [preview], "pagination": {"total": 1}})
    ref = body["contacts"][0]["clientReferenceId"]
    person = {"clientReferenceId": ref, "fullName": "Wei Ling Tan", "emails": [{"email": "wl@one.com.sg"}]}
    return httpx.Response(200, json={"requestId": "r3", "results": [person]})


def test_a_free_answer_without_billing_succeeds_and_a_paid_one_counts_the_documented_price() -> None:
    transport = httpx.MockTransport(_without_billing)
    empty = bulk("https://api.lusha.test", [CompanyRef("7", "empty.com.sg")], transport=transport)
    assert empty.contacts == {} and empty.credits_charged == 0
    found = bulk("https://api.lusha.test", [CompanyRef("8", "one.com.sg")], transport=transport)
    assert [c.email for c in found.contacts["8"]] == ["wl@one.com.sg"]
    assert found.credits_charged == 1 + 2  # a search credit for the preview, search + email for the reveal
