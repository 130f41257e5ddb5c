"""Tests of the Odoo clients (JSON-RPC and JSON-2) and of the idempotent sync upserts.

Real: the clients' HTTP over loopback sockets for both wire protocols, their authentication,
retries with real (shortened) sleeps, real socket timeouts and refused connections, redaction,
and the sync layer's search-then-write-or-create logic. Every test runs once per protocol.
Simulated: Odoo (OdooSim with in-memory res.partner / crm.lead / crm.tag) and its faults
(FaultConfig rates and OdooSim.fail_next, including a create whose answer is lost).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from leadgen_core.errors import ConfigError, OdooError
from leadgen_core.odoo import (
    LEAD_KEY_FIELD,
    PROTOCOLS,
    Json2Client,
    JsonRpcClient,
    OdooClient,
    OdooServerError,
    OdooWriteUncertain,
    RetryPolicy,
    SyncOutcome,
    lead_key,
    make_client,
    upsert_company,
    upsert_contact,
    upsert_lead,
)
from leadgen_core.odoo.client import USER_AGENT
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.odoo import OdooSim

T = TypeVar("T")
DB = "leadgen"
LOGIN = "bot@leadgen.test"
SECRET = "s3cr3t-odoo-key-4f9a"
WRONG_SECRET = "wr0ng-key-77e1"
FAST_RETRY = RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.02, max_retry_after_s=2.0)
COMPANY: dict[str, Any] = {
    "uen": "201912345A",
    "name": "Acme Robotics Pte. Ltd.",
    "website": "acme-robotics.sandbox.test",
    "phone": "+65 6123 4567",
}
CONTACTS = [
    {"email": "Alice_Tan@Acme.sg", "name": "Alice Tan", "title": "CEO"},
    {"email": "bob@acme.sg", "name": "Bob Lim", "title": "Head of Sales"},
]
KEY = lead_key(tenant="tenant-1", uen=COMPANY["uen"])
TLS = ssl.create_default_context()  # loading the CA bundle takes ~0.2 s: once, not per client


@pytest.fixture(scope="module")
def server() -> Iterator[OdooSim]:
    odoo = OdooSim(db=DB, users={LOGIN: SECRET})
    odoo.start()
    yield odoo
    odoo.stop()


@pytest.fixture
def sim(server: OdooSim) -> OdooSim:
    server.reset()
    return server


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> Any:
    return request.param


def run(
    sim: OdooSim, protocol: Any, job: Callable[[OdooClient], Awaitable[T]], *, secret: str = SECRET, **kw: Any
) -> T:
    """Run JOB with a fresh client of PROTOCOL in its own event loop, closing the client after."""

    async def main() -> T:
        options: dict[str, Any] = {"retry": FAST_RETRY, "timeout_s": 5.0, **kw}
        base_url = options.pop("base_url", None) or sim.base_url
        http = httpx.AsyncClient(verify=TLS)
        client = make_client(
            protocol=protocol, base_url=base_url, db=DB, login=LOGIN, secret=secret, http=http, **options
        )
        try:
            return await job(client)
        finally:
            await client.close()
            await http.aclose()

    return asyncio.run(main())


def failure(sim: OdooSim, protocol: Any, job: Callable[[OdooClient], Awaitable[Any]], **kw: Any) -> OdooError:
    with pytest.raises(OdooError) as caught:
        run(sim, protocol, job, **kw)
    return caught.value


def model_calls(sim: OdooSim, method: str) -> int:
    """Requests that called ORM METHOD, in either protocol."""
    return sum(
        1
        for r in sim.log
        if r.path.endswith(f"/{method}") or (r.path == "/jsonrpc" and method in r.json()["params"]["args"][4:5])
    )


async def pipeline(
    client: OdooClient, *, stop_before_lead: bool = False, score: float = 0.82, phone: str = COMPANY["phone"]
) -> list[SyncOutcome]:
    company = await upsert_company(client, **{**COMPANY, "phone": phone})
    outcomes = [company]
    for contact in CONTACTS:
        outcomes.append(await upsert_contact(client, parent_id=company.odoo_id, **contact))
    if stop_before_lead:
        return outcomes  # the run is "killed" here
    lead = await upsert_lead(
        client,
        key=KEY,
        partner_id=company.odoo_id,
        name="Acme Robotics",
        score=score,
        bucket="high" if score >= 0.66 else "medium",
        rationale="Robotics integrator <hiring> & growing\nFits ICP: B2B, 50-200 staff",
        contact_name="Alice Tan",
        contact_email="alice_tan@acme.sg",
    )
    return [*outcomes, lead]


# --- authentication -----------------------------------------------------------------------
def test_authentication_succeeds_and_jsonrpc_authenticates_once(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(client.search_read("res.partner", [], fields=["name"]) for _ in range(5))))

    assert run(sim, protocol, job) == [[]] * 5
    assert {r.headers["user-agent"] for r in sim.log} == {USER_AGENT}
    if protocol == "jsonrpc":
        auths = [r for r in sim.log if r.json()["params"]["method"] == "authenticate"]
        assert len(auths) == 1
        assert [r.json()["params"]["args"][1] for r in sim.log[1:]] == [sim.uid_of(LOGIN)] * 5
    else:
        assert {(r.headers["authorization"], r.headers["x-odoo-database"]) for r in sim.log} == {
            (f"bearer {SECRET}", DB)
        }


def test_bad_credentials_raise_access_denied_without_retry(sim: OdooSim, protocol: Any) -> None:
    error = failure(sim, protocol, lambda c: c.search_read("res.partner", [], fields=["name"]), secret=WRONG_SECRET)
    assert isinstance(error, OdooServerError)
    assert error.retryable is False
    assert len(sim.log) == 1
    if protocol == "jsonrpc":
        assert (error.odoo_name, error.http_status) == (None, 200)
        assert str(error) == (
            "odoo common.authenticate: access denied on database 'leadgen' (login or password/API key rejected)"
        )
    else:
        assert (error.odoo_name, error.http_status) == ("werkzeug.exceptions.Unauthorized", 401)
        assert str(error) == "odoo res.partner.search_read: HTTP 401 werkzeug.exceptions.Unauthorized: Invalid apikey"
    assert WRONG_SECRET not in f"{error} {error!r}"


# --- domains ------------------------------------------------------------------------------
COMPANIES: list[dict[str, Any]] = [
    {"name": "Acme Robotics", "company_registry": "201912345A"},
    {"name": "Beta Foods", "company_registry": "T09LL0001B"},
    {"name": "Acme Logistics", "parent_id": 1},  # a subsidiary, for child_of
]
PEOPLE = [
    {"name": "Alice Tan", "email": "alice_tan@acme.sg", "parent_id": 1},
    {"name": "Alicia Wong", "email": "alicextan@acme.sg", "parent_id": 1},
    {"name": "Carol", "email": "CAROL@beta.sg", "parent_id": 2},
    {"name": "Eve", "email": "eve@acme-log.sg", "parent_id": 3},
    {"name": "Gone", "email": "gone@acme.sg", "parent_id": 1, "active": False},
]
DOMAIN_CASES: list[tuple[list[Any], set[str]]] = [
    ([["is_company", "=", True]], {"Acme Robotics", "Beta Foods", "Acme Logistics"}),
    ([["is_company", "!=", True]], {"Alice Tan", "Alicia Wong", "Carol", "Eve"}),
    ([["company_registry", "in", ["201912345A", "T09LL0001B"]]], {"Acme Robotics", "Beta Foods"}),
    ([["company_registry", "not in", ["201912345A"]], ["is_company", "=", True]], {"Beta Foods", "Acme Logistics"}),
    ([["name", "ilike", "acme"]], {"Acme Robotics", "Acme Logistics"}),
    ([["name", "like", "acme"]], set()),
    ([["name", "like", "Acme R"]], {"Acme Robotics"}),
    ([["email", "=ilike", "carol@BETA.sg"]], {"Carol"}),
    ([["email", "=ilike", "alice_tan@acme.sg"]], {"Alice Tan", "Alicia Wong"}),  # _ is a wildcard
    ([["email", "=ilike", "alice\\_tan@acme.sg"]], {"Alice Tan"}),
    ([["email", "=ilike", "%@acme.sg"]], {"Alice Tan", "Alicia Wong"}),
    (["|", ["name", "=", "Carol"], ["name", "=", "Eve"]], {"Carol", "Eve"}),
    (["!", ["is_company", "=", True]], {"Alice Tan", "Alicia Wong", "Carol", "Eve"}),
    (["&", ["is_company", "=", False], "|", ["parent_id", "=", 2], ["parent_id", "=", 3]], {"Carol", "Eve"}),
    ([["is_company", "=", False], "!", ["parent_id", "in", [1, 2]]], {"Eve"}),  # implicit AND
    ([["parent_id", "ilike", "beta"]], {"Carol"}),
    ([["parent_id", "=", False]], {"Acme Robotics", "Beta Foods"}),
    ([["id", "child_of", 1]], {"Acme Robotics", "Acme Logistics", "Alice Tan", "Alicia Wong", "Eve"}),
    ([["name", "=", "Gone"]], set()),  # archived records stay hidden unless `active` is mentioned
    ([["name", "=", "Gone"], ["active", "=", False]], {"Gone"}),
]


@pytest.mark.parametrize(("domain", "expected"), DOMAIN_CASES, ids=[str(d) for d, _ in DOMAIN_CASES])
def test_domain_operators(sim: OdooSim, protocol: Any, domain: list[Any], expected: set[str]) -> None:
    async def job(client: OdooClient) -> set[str]:
        for company in COMPANIES:
            await client.create("res.partner", {**company, "is_company": True})
        for person in PEOPLE:
            await client.create("res.partner", person)
        return {r["name"] for r in await client.search_read("res.partner", domain, fields=["name"])}

    assert run(sim, protocol, job) == expected


def test_search_read_limit_and_fields(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> list[dict[str, Any]]:
        for name in ["a", "b", "c"]:
            await client.create("crm.tag", {"name": name})
        return await client.search_read("crm.tag", [], fields=["name"], limit=2)

    assert run(sim, protocol, job) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


# --- idempotency --------------------------------------------------------------------------
def test_rerun_creates_nothing_and_writes_nothing(sim: OdooSim, protocol: Any) -> None:
    first = run(sim, protocol, pipeline)
    assert [(o.action, o.model) for o in first] == [
        ("created", "res.partner"),
        ("created", "res.partner"),
        ("created", "res.partner"),
        ("created", "crm.lead"),
    ]
    counts, writes = sim.counts(), sim.write_count
    assert counts == {"res.partner": 3, "crm.lead": 1, "crm.tag": 1}
    second = run(sim, protocol, pipeline)
    assert [o.action for o in second] == ["unchanged"] * 4
    assert [o.odoo_id for o in second] == [o.odoo_id for o in first]
    assert (sim.counts(), sim.write_count) == (counts, writes)
    lead = sim.records("crm.lead")[0]
    assert (lead[LEAD_KEY_FIELD], lead["partner_id"], lead["probability"], lead["type"]) == (KEY, 1, 82.0, "lead")
    assert lead["description"].startswith("<p>Leadgen score 0.82 (high)<br>Robotics integrator &lt;hiring&gt;")
    assert [c["email"] for c in sim.records("res.partner")[1:]] == ["alice_tan@acme.sg", "bob@acme.sg"]


def test_partner_key_is_company_registry_or_ref_on_odoo_16_and_older(sim: OdooSim, protocol: Any) -> None:
    from leadgen_core.odoo.sync import partner_key_field

    assert run(sim, protocol, partner_key_field) == "company_registry"
    with OdooSim(db=DB, users={LOGIN: SECRET}, partner_registry=False) as legacy:

        async def twice(client: OdooClient) -> list[SyncOutcome]:
            field = await partner_key_field(client)
            assert field == "ref"
            return [await upsert_company(client, **COMPANY, key_field=field) for _ in range(2)]

        first, again = run(legacy, protocol, twice)
        assert (first.action, again.action, again.odoo_id) == ("created", "unchanged", first.odoo_id)
        (partner,) = legacy.records("res.partner")
        assert partner["ref"] == COMPANY["uen"] and "company_registry" not in partner
        # the field really is missing there: keying on it is refused as a real Odoo 16 would
        error = failure(legacy, protocol, lambda c: upsert_company(c, **COMPANY))
        assert "company_registry" in str(error)


def test_changes_are_written_and_manual_tags_kept(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> list[SyncOutcome]:
        await pipeline(client)
        manual = await client.create("crm.tag", {"name": "vip"})  # a salesperson's tag
        await client.write("crm.lead", [1], vals={"tag_ids": [[4, manual]]})
        return await pipeline(client, score=0.5, phone="+65 6999 0000")

    outcomes = run(sim, protocol, job)
    assert [o.action for o in outcomes] == ["updated", "unchanged", "unchanged", "updated"]
    assert sim.records("res.partner")[0]["phone"] == "+65 6999 0000"
    tags = {t["id"]: t["name"] for t in sim.records("crm.tag")}
    lead = sim.records("crm.lead")[0]
    assert sorted(tags[t] for t in lead["tag_ids"]) == ["leadgen:medium", "vip"]
    assert (lead["probability"], sim.counts()["crm.lead"]) == (50.0, 1)


def test_contacts_differing_by_a_like_wildcard_stay_apart(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> list[SyncOutcome]:
        company = await upsert_company(client, **COMPANY)
        first = await upsert_contact(client, parent_id=company.odoo_id, email="alicextan@acme.sg", name="Alicia")
        second = await upsert_contact(client, parent_id=company.odoo_id, email="alice_tan@acme.sg", name="Alice")
        return [first, second]

    assert [(o.action, o.odoo_id) for o in run(sim, protocol, job)] == [("created", 2), ("created", 3)]
    assert [p["email"] for p in sim.records("res.partner")] == [False, "alicextan@acme.sg", "alice_tan@acme.sg"]


def test_killed_halfway_then_rerun_has_no_duplicates(sim: OdooSim, protocol: Any) -> None:
    partial = run(sim, protocol, lambda c: pipeline(c, stop_before_lead=True))
    assert [o.action for o in partial] == ["created"] * 3
    assert sim.counts() == {"res.partner": 3, "crm.lead": 0, "crm.tag": 0}
    rerun = run(sim, protocol, pipeline)
    assert [o.action for o in rerun] == ["unchanged", "unchanged", "unchanged", "created"]
    assert sim.counts() == {"res.partner": 3, "crm.lead": 1, "crm.tag": 1}


def test_lost_create_answer_is_resolved_by_key(sim: OdooSim, protocol: Any) -> None:
    # the lead is stored but its answer is a 504: the client must not blindly create it again
    sim.fail_next(1, status=504, method="create", after_apply=True)
    run(sim, protocol, lambda c: pipeline(c, stop_before_lead=True))
    sim.fail_next(1, status=504, method="create", after_apply=True)
    sim.fail_next(1, status=502, method="create")  # not applied: found missing, then created
    outcomes = run(sim, protocol, pipeline)
    assert [o.action for o in outcomes] == ["unchanged", "unchanged", "unchanged", "created"]
    assert outcomes[-1].odoo_id == 1
    assert sim.counts() == {"res.partner": 3, "crm.lead": 1, "crm.tag": 1}


def test_archived_lead_is_found_not_recreated(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> SyncOutcome:
        await pipeline(client)
        await client.write("crm.lead", [1], vals={"active": False})  # marked lost by sales
        return (await pipeline(client))[-1]

    assert run(sim, protocol, job) == SyncOutcome("unchanged", "crm.lead", 1)
    assert sim.counts()["crm.lead"] == 1


# --- retries and errors -------------------------------------------------------------------
def test_transient_5xx_is_retried_then_succeeds(sim: OdooSim, protocol: Any) -> None:
    async def job(client: OdooClient) -> list[dict[str, Any]]:
        await client.search_read("crm.tag", [], fields=["name"])  # authenticated (JSON-RPC) before faults
        sim.fail_next(1, status=503)
        sim.fail_next(1, status=502)
        return await client.search_read("crm.tag", [], fields=["name"])

    assert run(sim, protocol, job) == []
    assert [r.status for r in sim.log[-3:]] == [503, 502, 200]
    assert model_calls(sim, "search_read") == 4


def test_429_retry_after_is_honoured(sim: OdooSim, protocol: Any) -> None:
    sim.fail_next(1, status=429, retry_after=0.3)
    started = time.monotonic()
    assert run(sim, protocol, lambda c: c.create("crm.tag", {"name": "a"})) == 1
    assert time.monotonic() - started >= 0.3
    assert sim.log[0].status == 429
    assert sim.counts()["crm.tag"] == 1


def test_a_retry_after_beyond_the_maximum_fails_retryable_at_once(sim: OdooSim, protocol: Any) -> None:
    # FAST_RETRY sleeps through at most 2 s: a 120 s wait is neither slept nor cut short to 2 s
    sim.fail_next(1, status=429, retry_after=120)
    started = time.monotonic()
    error = failure(sim, protocol, lambda c: c.create("crm.tag", {"name": "a"}))
    assert time.monotonic() - started < 1.5
    assert error.retryable is True and "asks to wait 120s" in str(error)
    assert [r.status for r in sim.log] == [429] and sim.counts()["crm.tag"] == 0


def test_ambiguous_create_failure_is_not_retried(sim: OdooSim, protocol: Any) -> None:
    sim.fail_next(1, status=502, method="create")
    error = failure(sim, protocol, lambda c: c.create("crm.tag", {"name": "a"}))
    assert isinstance(error, OdooWriteUncertain)
    assert error.retryable is True
    assert model_calls(sim, "create") == 1


def test_persistent_5xx_raises_retryable_after_bounded_attempts(protocol: Any) -> None:
    with OdooSim(db=DB, users={LOGIN: SECRET}, faults=FaultConfig(error_rate=1.0)) as sim:
        error = failure(sim, protocol, lambda c: c.search_read("crm.tag", [], fields=["name"]))
        assert len(sim.log) == FAST_RETRY.max_attempts
    assert error.retryable is True
    assert "HTTP 503 after 3 attempts" in str(error)
    assert SECRET not in f"{error} {error!r}"


def test_timeouts_and_refused_connections_are_retryable(protocol: Any) -> None:
    faults = FaultConfig(timeout_rate=1.0, timeout_sleep_s=0.6)
    with OdooSim(db=DB, users={LOGIN: SECRET}, faults=faults) as slow:
        started = time.monotonic()
        timed_out = failure(slow, protocol, lambda c: c.search_read("crm.tag", [], fields=["name"]), timeout_s=0.1)
        assert time.monotonic() - started < 1.5
        base_url = slow.base_url
    assert timed_out.retryable is True
    assert "ReadTimeout" in str(timed_out)
    refused = failure(slow, protocol, lambda c: c.search_read("crm.tag", [], fields=["name"]), base_url=base_url)
    assert refused.retryable is True
    assert "connection failed (ConnectError) after 3 attempts" in str(refused)


def test_malformed_bodies_are_retried_then_raise(protocol: Any) -> None:
    with OdooSim(db=DB, users={LOGIN: SECRET}, faults=FaultConfig(malformed_rate=1.0)) as sim:
        error = failure(sim, protocol, lambda c: c.search_read("crm.tag", [], fields=["name"]))
        assert len(sim.log) == FAST_RETRY.max_attempts
    assert (error.retryable, "malformed JSON body" in str(error)) == (True, True)


def test_unknown_model_raises_at_once(sim: OdooSim, protocol: Any) -> None:
    error = failure(sim, protocol, lambda c: c.search_read("x.nope", [], fields=["name"]))
    assert isinstance(error, OdooServerError)
    assert error.retryable is False
    assert model_calls(sim, "search_read") == 1
    if protocol == "jsonrpc":
        assert (error.odoo_name, error.http_status) == ("odoo.exceptions.UserError", 200)
        assert str(error) == "odoo x.nope.search_read: odoo.exceptions.UserError: Object x.nope doesn't exist"
    else:
        assert (error.odoo_name, error.http_status) == ("werkzeug.exceptions.NotFound", 404)
        assert str(error) == (
            "odoo x.nope.search_read: HTTP 404 werkzeug.exceptions.NotFound: the model 'x.nope' does not exist"
        )


def test_unknown_field_is_not_retried(sim: OdooSim, protocol: Any) -> None:
    error = failure(sim, protocol, lambda c: c.create("crm.tag", {"name": "a", "x_nope": 1}))
    assert isinstance(error, OdooServerError)
    assert (error.odoo_name, error.retryable) == ("builtins.ValueError", False)
    assert error.http_status == (200 if protocol == "jsonrpc" else 500)
    assert model_calls(sim, "create") == 1


def test_credentials_never_appear_in_errors_logs_or_reprs(
    sim: OdooSim, protocol: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # the server echoes the secret back inside its error message; the client must redact it
    echoed = failure(sim, protocol, lambda c: c.search_read("res.partner", [[SECRET, "=", 1]], fields=["name"]))
    assert "Invalid field '***' on model 'res.partner'" in str(echoed)
    sim.fail_next(2, status=503)
    run(sim, protocol, lambda c: c.search_read("res.partner", [], fields=["name"]))  # logs two retries
    client = make_client(protocol=protocol, base_url=sim.base_url, db=DB, login=LOGIN, secret=SECRET)
    texts = [str(echoed), repr(echoed), repr(client), caplog.text]
    assert "retry 1 of 2" in caplog.text
    assert all(SECRET not in text for text in texts)
    asyncio.run(client.close())


def test_make_client_picks_the_protocol() -> None:
    jsonrpc = make_client(protocol="jsonrpc", base_url="http://127.0.0.1:1", db=DB, login=LOGIN, secret=SECRET)
    json2 = make_client(protocol="json2", base_url="http://127.0.0.1:1", db=DB, login=LOGIN, secret=SECRET)
    assert isinstance(jsonrpc, JsonRpcClient)
    assert isinstance(json2, Json2Client)
    assert isinstance(jsonrpc, OdooClient)
    assert isinstance(json2, OdooClient)
    with pytest.raises(ConfigError, match="unknown Odoo protocol 'xmlrpc'"):
        make_client(protocol="xmlrpc", base_url="http://x", db=DB, login=LOGIN, secret=SECRET)  # type: ignore[arg-type]
    asyncio.run(jsonrpc.close())
    asyncio.run(json2.close())


def test_sync_rejects_bad_input(sim: OdooSim, protocol: Any) -> None:
    with pytest.raises(ValueError, match="score must be within"):
        run(
            sim,
            protocol,
            lambda c: upsert_lead(c, key=KEY, partner_id=1, name="x", score=1.5, bucket="high", rationale="r"),
        )
    with pytest.raises(ValueError, match="email"):
        run(sim, protocol, lambda c: upsert_contact(c, parent_id=1, email="not-an-email", name="x"))
    assert sim.write_count == 0
