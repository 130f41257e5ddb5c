"""Single flight of paid vendor calls across tenants (sql/045, `Spender.call`, the verify stage).

Real: Postgres (the claims in `vendor_inflight`, the shared response cache, each tenant's budget
ledger and reservation journal, under the application role, so row-level security is in force),
the Spenders of several tenants calling at the same moment in one event loop (their database steps
in threads, as in a night), and for ZeroBounce the `realistic` simulator over loopback HTTP with
the stage's own sender (`_Batches`) as `open_toolkit` builds it. Simulated: the vendors, whose
request logs and billable counters are the truth compared with.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import psycopg
import pytest

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import Database
from leadgen_core.enrich.verify_stage import _Batches, flight_key
from leadgen_core.errors import BudgetExhausted, DatabaseError, VendorUnavailable
from leadgen_core.sandbox.zerobounce import ZeroBounceSim
from leadgen_core.spend import budget
from leadgen_core.spend.spender import DryRunSkipped, Flight, FlightTimeout, Paid, Spender, fingerprint
from tests import test_zerobounce_verify as zb
from tests.conftest import add_tenant

sim = zb.sim  # the ZeroBounce simulator fixture (realistic, time scale 100)
context, send = zb.context, zb.send

TENANTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta")
REQUEST = {"query": "Firm 201900001A Pte Ltd", "depth": "basic"}


@pytest.fixture
def tenants(owner_conn: psycopg.Connection) -> tuple[str, ...]:
    for t in TENANTS:
        add_tenant(owner_conn, t)
    return TENANTS


def spender(db: Database, tenant: str, **kw: Any) -> Spender:
    return Spender(
        tenant_id=tenant,
        caps={"tavily": 100, "zerobounce": 10_000},
        tenant_conn=lambda: db.tenant_transaction(tenant),
        global_conn=db.global_transaction,
        **({"statement_conn": db.global_statement} | kw),  # as the stages do: the opening in one statement
    )


def units(db: Database, tenant: str, vendor: str = "tavily") -> int:
    with db.tenant_transaction(tenant) as conn:
        rows = budget.spend(conn, tenant_id=tenant, day=today_sg(), caps={vendor: 100})
    return next((r.units for r in rows if r.vendor == vendor), 0)


def claims(owner: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    return owner.execute("SELECT fingerprint, owner_tenant, run_id FROM vendor_inflight ORDER BY 1, 2").fetchall()


def count(owner: psycopg.Connection, query: str) -> int:
    row = owner.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def open_reservations(owner: psycopg.Connection) -> int:
    return count(owner, "SELECT count(*) FROM spend_reservations")


def put_claim(owner: psycopg.Connection, key: str, tenant: str, *, run_id: str | None, expires_in_s: float) -> None:
    owner.execute(
        "INSERT INTO vendor_inflight (vendor, fingerprint, token, owner_tenant, run_id, expires_at) "
        "VALUES ('tavily', %s, gen_random_uuid(), %s, %s, now() + make_interval(secs => %s))",
        (key, tenant, run_id, expires_in_s),
    )


def test_tenants_asking_the_same_request_at_once_pay_for_it_once(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    calls: list[float] = []

    async def run() -> tuple[Any, int]:
        calls.append(time.monotonic())
        # a vendor call long enough for every other tenant to open its call (a database round trip
        # each, slow on a busy machine) and find it in flight
        await asyncio.sleep(2.0)
        return {"results": ["answer"]}, 3

    spenders = [spender(app_db, t) for t in tenants]

    async def all_at_once() -> list[Paid[Any]]:
        return await asyncio.gather(*(s.call(vendor="tavily", request=REQUEST, estimate=3, run=run) for s in spenders))

    paid = asyncio.run(all_at_once())
    assert len(calls) == 1  # one vendor call for six tenants
    # the stage metadata's shared_answers: every other tenant waited for the payer's answer
    assert sum(s.shared.get("tavily", 0) for s in spenders) == len(tenants) - 1
    assert all(p.value == {"results": ["answer"]} for p in paid)
    payers = [t for t, p in zip(tenants, paid, strict=True) if not p.cached]
    assert len(payers) == 1 and [p.units for p in paid if not p.cached] == [3]
    assert all(p.units == 0 for p in paid if p.cached)
    assert {t: units(app_db, t) for t in tenants} == {t: (3 if t in payers else 0) for t in tenants}
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0


def test_when_the_owner_fails_a_waiter_claims_and_pays_itself(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    calls: list[str] = []

    async def failing() -> tuple[Any, int]:
        calls.append("alpha")
        await asyncio.sleep(0.3)
        raise VendorUnavailable("tavily", "503 after bounded retries")

    async def working() -> tuple[Any, int]:
        calls.append("beta")
        return {"results": ["beta's"]}, 2

    async def race() -> tuple[BaseException | Paid[Any], BaseException | Paid[Any]]:
        first = asyncio.create_task(spender(app_db, "alpha").call(vendor="tavily", request=REQUEST, estimate=2,
                                                                  run=failing))  # fmt: skip
        await asyncio.sleep(0.1)  # alpha holds the claim
        second = spender(app_db, "beta").call(vendor="tavily", request=REQUEST, estimate=2, run=working)
        a: BaseException | Paid[Any]
        b: BaseException | Paid[Any]
        a, b = await asyncio.gather(first, second, return_exceptions=True)
        return a, b

    a, b = asyncio.run(race())
    assert isinstance(a, VendorUnavailable)
    assert b == Paid({"results": ["beta's"]}, 2, False)
    assert calls == ["alpha", "beta"]  # beta waited for alpha's call, then made its own
    assert units(app_db, "alpha") == 0 and units(app_db, "beta") == 2
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0


def test_an_expired_claim_is_taken_over_and_a_live_one_is_waited_for_until_the_deadline(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    key = fingerprint("tavily", REQUEST)
    put_claim(owner_conn, key, "beta", run_id="killed", expires_in_s=-1)
    calls: list[str] = []

    async def run() -> tuple[Any, int]:
        calls.append("alpha")
        return {"results": []}, 1

    paid = asyncio.run(spender(app_db, "alpha").call(vendor="tavily", request=REQUEST, estimate=1, run=run))
    assert paid == Paid({"results": []}, 1, False) and calls == ["alpha"]
    assert claims(owner_conn) == []

    # a live claim of another tenant whose call never ends: waited for, up to the stage's deadline
    other = {"query": "another"}
    put_claim(owner_conn, fingerprint("tavily", other), "beta", run_id="r", expires_in_s=600)
    waiter = spender(app_db, "alpha", deadline=time.monotonic() + 0.6)
    started = time.monotonic()
    with pytest.raises(FlightTimeout) as caught:
        asyncio.run(waiter.call(vendor="tavily", request=other, estimate=1, run=run))
    assert isinstance(caught.value, TimeoutError)  # what callers already leave failed (retried)
    assert 0.5 < time.monotonic() - started < 3.0
    assert calls == ["alpha"] and units(app_db, "alpha") == 1 and open_reservations(owner_conn) == 0


def test_a_dry_run_never_claims_nor_waits(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    put_claim(owner_conn, fingerprint("tavily", {"query": "held"}), "beta", run_id="r", expires_in_s=600)
    dry = spender(app_db, "alpha", dry_run=True)

    async def run() -> tuple[Any, int]:
        raise AssertionError("a dry run calls nothing")

    for request in (REQUEST, {"query": "held"}):
        started = time.monotonic()
        with pytest.raises(DryRunSkipped):
            asyncio.run(dry.call(vendor="tavily", request=request, estimate=2, run=run))
        assert time.monotonic() - started < 5.0  # never waits for the held claim (600 s)
    assert dry.forecast.calls == {"tavily": 2}
    assert [c[1] for c in claims(owner_conn)] == ["beta"]  # only the other tenant's claim
    with pytest.raises(RuntimeError, match="never claims"):
        asyncio.run(dry.claim("tavily", ["k"], lambda conn, keys: {}))


def test_a_refused_reservation_drops_the_claim(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    poor = spender(app_db, "alpha")
    poor.caps = {"tavily": 1}

    async def run() -> tuple[Any, int]:
        raise AssertionError("refused before the call")

    with pytest.raises(BudgetExhausted):
        asyncio.run(poor.call(vendor="tavily", request=REQUEST, estimate=5, run=run))
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0

    # and a waiter behind it is not left waiting for the expiry: beta pays at once
    async def beta_run() -> tuple[Any, int]:
        return {"results": ["b"]}, 1

    started = time.monotonic()
    paid = asyncio.run(spender(app_db, "beta").call(vendor="tavily", request=REQUEST, estimate=1, run=beta_run))
    assert not paid.cached and time.monotonic() - started < 5.0  # not the claim's expiry (900 s)


def test_a_cached_answer_is_returned_with_nothing_claimed_or_reserved_even_past_the_cap(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    # `_begin` (sql/047's spend_open) claims, then reads the cache: a hit ends the claim, reserves nothing
    async def pay() -> tuple[Any, int]:
        return {"results": ["paid once"]}, 2

    asyncio.run(spender(app_db, "alpha").call(vendor="tavily", request=REQUEST, estimate=2, run=pay))
    poor = spender(app_db, "beta")
    poor.caps = {"tavily": 0}  # a reservation would be refused: the cache answers first

    async def never() -> tuple[Any, int]:
        raise AssertionError("answered from the cache")

    paid = asyncio.run(poor.call(vendor="tavily", request=REQUEST, estimate=2, run=never))
    assert paid == Paid({"results": ["paid once"]}, 0, True) and poor.cache_hits == {"tavily": 1}
    assert units(app_db, "alpha") == 2 and units(app_db, "beta") == 0
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0
    assert count(owner_conn, "SELECT count(*) FROM vendor_usage WHERE tenant_id = 'beta'") == 0


def test_a_refused_reservation_ends_the_claim_its_caller_brought(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    poor = spender(app_db, "alpha")
    poor.caps = {"zerobounce": 1}

    async def run() -> tuple[Any, int]:
        raise AssertionError("refused before the call")

    async def claim_then_call() -> None:
        flights = await poor.claim("zerobounce", ["a@x.co", "b@x.co"], lambda conn, keys: {})
        assert flights.claim is not None and len(claims(owner_conn)) == 2
        await poor.call(vendor="zerobounce", request={"emails": ["a@x.co", "b@x.co"]}, estimate=2, run=run,
                        cacheable=False, claim=flights.claim)  # fmt: skip

    with pytest.raises(BudgetExhausted, match="daily cap 1 reached"):
        asyncio.run(claim_then_call())
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0  # the waiters may claim them now


def test_the_opening_sees_an_answer_committed_while_its_claim_waited_on_the_owners_row(
    app_db: Database, owner_conn: psycopg.Connection, clean_db: Any, tenants: tuple[str, ...]
) -> None:
    # The owner records its answer and ends its claim in one transaction. A claimer that arrived
    # meanwhile waits on the claim's row; when the owner commits, the claim goes through, and the
    # read after it (a later statement of spend_open, a new snapshot) must find the answer: paying
    # again would be a double charge.
    key = fingerprint("tavily", REQUEST)
    put_claim(owner_conn, key, "alpha", run_id=None, expires_in_s=600)
    owner = psycopg.connect(clean_db.owner_dsn)  # a transaction left open: the owner mid-record
    try:
        owner.execute("DELETE FROM vendor_inflight WHERE fingerprint = %s", (key,))
        owner.execute(
            "INSERT INTO vendor_response_cache (vendor, fingerprint, response, units, expires_at) "
            "VALUES ('tavily', %s, '{\"results\": [\"owner\"]}', 2, now() + interval '1 day')",
            (key,),
        )

        async def never() -> tuple[Any, int]:
            raise AssertionError("the owner's answer is read after the claim")

        async def claim_while_owner_records() -> Paid[Any]:
            call = asyncio.create_task(asyncio.to_thread(
                lambda: asyncio.run(spender(app_db, "beta").call(vendor="tavily", request=REQUEST, estimate=2,
                                                                 run=never))
            ))  # fmt: skip
            await asyncio.sleep(0.3)  # beta's claim now waits on the owner's row
            assert not call.done()
            owner.commit()
            return await call

        paid = asyncio.run(claim_while_owner_records())
    finally:
        owner.close()
    assert paid == Paid({"results": ["owner"]}, 0, True)
    assert units(app_db, "beta") == 0 and claims(owner_conn) == [] and open_reservations(owner_conn) == 0


def test_the_opening_without_a_statement_connection_runs_in_a_tenant_transaction(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    # CLI callers and tests build a Spender without `statement_conn`: spend_open then runs inside
    # the tenant's transaction, with the same outcomes (paid once, cached, refused past the cap)
    plain = spender(app_db, "alpha", statement_conn=None)

    async def pay() -> tuple[Any, int]:
        return {"results": ["once"]}, 2

    assert asyncio.run(plain.call(vendor="tavily", request=REQUEST, estimate=2, run=pay)) == Paid(
        {"results": ["once"]}, 2, False
    )
    assert asyncio.run(plain.call(vendor="tavily", request=REQUEST, estimate=2, run=pay)).cached
    plain.caps = {"tavily": 3}
    with pytest.raises(BudgetExhausted):
        asyncio.run(plain.call(vendor="tavily", request={"query": "another"}, estimate=2, run=pay))
    assert units(app_db, "alpha") == 2 and claims(owner_conn) == [] and open_reservations(owner_conn) == 0


def test_the_one_statement_opening_leaves_nothing_on_the_session_and_checks_the_tenant(
    clean_db: Any, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    with Database(clean_db.app_dsn, min_size=1, max_size=1, name="one-conn") as db:  # one connection, reused
        alpha = spender(db, "alpha")

        async def pay() -> tuple[Any, int]:
            return {"results": ["a"]}, 1

        asyncio.run(alpha.call(vendor="tavily", request=REQUEST, estimate=1, run=pay))
        with db.global_statement() as conn:
            assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone() in (("",), (None,))
            assert conn.execute("SELECT count(*) FROM vendor_usage").fetchone() == (0,)  # RLS: no tenant set
        with pytest.raises(DatabaseError, match="invalid tenant id"), db.global_statement() as conn:
            conn.execute(
                "SELECT * FROM spend_open('Alpha; x', 'tavily', gen_random_uuid(), NULL, 1, NULL, NULL, NULL, 0, 0, "
                "current_date, 1, 10, 'k', NULL, '{}')"
            )
    assert units_of(owner_conn, "alpha") == 1 and units_of(owner_conn, "Alpha; x") == 0


def test_the_one_statement_record_writes_a_batchs_verification_rows_once_each(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    # spend_close upserts the answer's rows into the verification cache with the settlement; an
    # address the vendor answered twice keeps its last row (one INSERT cannot touch a row twice)
    alpha = spender(app_db, "alpha")
    rows = [("a@x.co", "valid", "", False, None), ("b@x.co", "unknown", "timeout", False, None),
            ("a@x.co", "invalid", "mailbox_not_found", True, "a@y.co")]  # fmt: skip

    async def run() -> tuple[Any, int]:
        return [list(r) for r in rows], 2

    paid = asyncio.run(alpha.call(vendor="zerobounce", request={"emails": ["a@x.co", "b@x.co"]}, estimate=3,
                                  run=run, cacheable=False, verifications=lambda value: [tuple(r) for r in value]))  # fmt: skip
    assert paid.units == 2 and units(app_db, "alpha", "zerobounce") == 2  # the slack of one unit released
    got = owner_conn.execute(
        "SELECT email, status, sub_status, free_email, did_you_mean FROM email_verification_cache ORDER BY email"
    ).fetchall()
    assert got == [
        ("a@x.co", "invalid", "mailbox_not_found", True, "a@y.co"),
        ("b@x.co", "unknown", "timeout", False, None),
    ]
    assert open_reservations(owner_conn) == 0 and claims(owner_conn) == []
    with pytest.raises(psycopg.errors.RaiseException, match="invalid tenant id"):
        owner_conn.execute(
            "SELECT spend_close('', 'tavily', 1, current_date, 0, NULL, NULL, '{}', NULL, NULL, 0, 1, NULL)"
        )


def test_a_flight_names_where_its_answer_is_read() -> None:
    # the opening reads the answer in SQL (spend_open), so a flight must say where: never a silent
    # default that would miss the answer and pay again
    with pytest.raises(ValueError, match="not 'contacts'"):
        Flight("k", lambda conn, keys: {}, "contacts")
    with pytest.raises(ValueError, match="freshness"):
        Flight("k", lambda conn, keys: {}, "verification", email="a@x.co", ttl_days=0)
    assert Flight("k", lambda conn, keys: {}, "verification", email="a@x.co", ttl_days=90).source == "verification"


def units_of(owner: psycopg.Connection, tenant: str) -> int:
    return count(owner, f"SELECT coalesce(sum(units), 0) FROM vendor_usage WHERE tenant_id = '{tenant}'")


def test_reconcile_deletes_the_claims_of_the_tenants_dead_runs_only(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    put_claim(owner_conn, "k-dead", "alpha", run_id="killed-run", expires_in_s=600)
    put_claim(owner_conn, "k-cli", "alpha", run_id=None, expires_in_s=600)
    put_claim(owner_conn, "k-now", "alpha", run_id="this-run", expires_in_s=600)
    put_claim(owner_conn, "k-beta", "beta", run_id="killed-run", expires_in_s=600)
    spender(app_db, "alpha", run_id="this-run").reconcile()
    assert claims(owner_conn) == [("k-beta", "beta", "killed-run"), ("k-now", "alpha", "this-run")]


def test_a_run_killed_mid_call_leaves_a_claim_its_next_run_deletes(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...]
) -> None:
    killed = spender(app_db, "alpha", run_id="run-1")
    begun = killed._begin("tavily", 2, fingerprint("tavily", REQUEST), True, None)  # claimed, reserved, SIGKILL
    assert begun.claim is not None and begun.held is not None
    assert claims(owner_conn) == [(fingerprint("tavily", REQUEST), "alpha", "run-1")]
    assert spender(app_db, "alpha", run_id="run-2").reconcile() == {"tavily": 2}
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0

    async def run() -> tuple[Any, int]:  # another tenant then pays at once instead of waiting 900 s
        return {"results": ["b"]}, 1

    started = time.monotonic()
    paid = asyncio.run(spender(app_db, "beta").call(vendor="tavily", request=REQUEST, estimate=1, run=run))
    assert not paid.cached and time.monotonic() - started < 5.0  # not the claim's expiry (900 s)


# --- ZeroBounce: the verify stage of two tenants sharing addresses --------------------------------
def sent_addresses(sim: ZeroBounceSim) -> list[str]:
    singles = [r.query["email"][0] for r in sim.requests_to("/v2/validate")]
    batched = [i["email_address"] for r in sim.bulk.requests_to("/v2/validatebatch") for i in r.json()["email_batch"]]
    return sorted(singles + batched)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_two_tenants_verifying_shared_addresses_at_once_pay_for_each_address_once(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...], sim: ZeroBounceSim, batch: bool
) -> None:
    emails = [f"person{i}@firm-{i % 7}.com.sg" for i in range(60)]
    mine = {"alpha": emails[:40], "beta": emails[20:]}  # 20 addresses in common

    async def both() -> list[_Batches]:
        return await asyncio.gather(*(send(context(app_db, sim, t), batch=batch, emails=e) for t, e in mine.items()))

    senders = dict(zip(mine, asyncio.run(both()), strict=True))
    sent = sent_addresses(sim)
    assert sent == sorted(emails)  # each address sent to ZeroBounce once, by one tenant or the other
    for tenant, sender in senders.items():
        assert set(sender.status) == set(mine[tenant]) and not sender.problem  # every address answered
    # the ledgers add up to the bill: what a tenant waited for was paid by the other
    ledgers = {t: units(app_db, t, "zerobounce") for t in mine}
    assert sum(ledgers.values()) == sim.billable_units
    elsewhere = sum(s.kit.counters.get("verified_elsewhere", 0) for s in senders.values())
    assert elsewhere == 20
    # and the asset check's truth: no address verified twice
    twice = count(
        owner_conn,
        "SELECT count(*) FROM (SELECT email FROM email_verification_log GROUP BY email HAVING count(*) > 1) t",
    )
    assert twice == 0
    assert claims(owner_conn) == [] and open_reservations(owner_conn) == 0


def test_an_address_another_tenant_holds_is_left_out_of_the_batch_and_waited_for(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...], sim: ZeroBounceSim
) -> None:
    emails = [f"lead{i}@firm-{i}.com.sg" for i in range(10)]
    held = emails[3]
    owner_conn.execute(
        "INSERT INTO vendor_inflight (vendor, fingerprint, token, owner_tenant, run_id) "
        "VALUES ('zerobounce', %s, gen_random_uuid(), 'beta', 'r')",
        (flight_key(held),),
    )

    async def answer_later() -> None:  # beta's call answers after a while: its row, its claim's end
        await asyncio.sleep(0.8)
        with app_db.tenant_transaction("beta") as conn:
            conn.execute(
                "INSERT INTO email_verification_cache (email, status, sub_status) VALUES (%s, 'valid', '')", (held,)
            )
            conn.execute("DELETE FROM vendor_inflight WHERE fingerprint = %s", (flight_key(held),))

    async def run() -> _Batches:
        sender, _ = await asyncio.gather(send(context(app_db, sim, "alpha"), batch=True, emails=emails),
                                         answer_later())  # fmt: skip
        return sender

    sender = asyncio.run(run())
    (request,) = sim.bulk.requests_to("/v2/validatebatch")
    assert sorted(i["email_address"] for i in request.json()["email_batch"]) == sorted(set(emails) - {held})
    assert sender.status[held] == "valid" and set(sender.status) == set(emails) and not sender.problem
    assert units(app_db, "alpha", "zerobounce") == sim.billable_units
    assert claims(owner_conn) == []


def test_the_stage_gives_up_waiting_at_its_deadline(
    app_db: Database, owner_conn: psycopg.Connection, tenants: tuple[str, ...], sim: ZeroBounceSim
) -> None:
    held = "stuck@firm-1.com.sg"
    owner_conn.execute(
        "INSERT INTO vendor_inflight (vendor, fingerprint, token, owner_tenant, run_id) "
        "VALUES ('zerobounce', %s, gen_random_uuid(), 'beta', 'r')",
        (flight_key(held),),
    )
    ctx = dataclasses.replace(context(app_db, sim, "alpha"), deadline=time.monotonic() + 0.7)
    sender = asyncio.run(send(ctx, batch=False, emails=[held]))
    assert not sim.requests_to("/v2/validate")
    assert sender.problem[held].status == "failed"  # a TimeoutError: tried again on a later night
