"""The batched Odoo sync: how many calls a night makes, how many are in flight, and that batching keeps every rule.

Real: Postgres (evidence seeded as the owner, the stages run as the application role under RLS),
scoring, both Odoo clients over loopback sockets, the batched upserts and their fallbacks.
Simulated: Odoo (OdooSim). Calls are counted in the simulator's own request log, so a sync that
went back to one call per item, or filled every Odoo worker, fails here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from leadgen_core.db.pool import Database
from leadgen_core.errors import ConfigError, OdooError
from leadgen_core.leads.sync_stage import STAGE, UNREACHABLE_LIMIT, run_sync_stage
from leadgen_core.odoo import PROTOCOLS, SyncOutcome
from leadgen_core.odoo.batch import Wanted, contact_key, contact_key_of, contacts_domain, upsert_batch
from leadgen_core.odoo.json2 import Json2Client
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.sandbox.profile import SandboxProfile
from tests.test_odoo_sync import SECRET, assert_no_duplicates, connect, model_counts, scored_night, sync_ctx
from tests.test_scoring_stage import rows, settings

COMPANIES = 60  # 20 of each level: 20 leads, 40 contacts (20 CEOs, 20 managers), 20 mailboxes
CHUNK = 25  # three chunks: two full, one not
FIRST_SYNC_MAX_CALLS_PER_COMPANY = 1.5  # issue 9's target
RESYNC_MAX_CALLS_PER_COMPANY = 0.25


@pytest.fixture
def sim() -> Iterator[OdooSim]:
    with OdooSim(db="sandbox", users={"admin": SECRET}) as odoo:
        yield odoo


def orm_calls(sim: OdooSim, model: str, method: str) -> int:
    """JSON-2 requests to MODEL.METHOD in the simulator's log."""
    return len(sim.requests_to(f"/json/2/{model}/{method}"))


def clear_sync_status(owner: Any) -> None:
    owner.execute("DELETE FROM company_stage_status WHERE stage = %s", (STAGE,))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_calls_per_company_on_a_first_sync_and_an_unchanged_resync(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    seeded = scored_night(app_db, owner_conn, sim, protocol, n=COMPANIES)
    s = settings(odoo_sync_chunk_size=CHUNK)
    report = run_sync_stage(sync_ctx(app_db, s))
    first = len(sim.log)
    assert report.errors == 0 and report.counts().done == len(seeded)
    assert model_counts(sim) == {"res.partner": COMPANIES + 40, "crm.lead": 20, "crm.tag": 1}
    assert first <= FIRST_SYNC_MAX_CALLS_PER_COMPANY * COMPANIES, first
    # the stage counts its own calls (JSON-RPC's one authenticate is the transport's, not the stage's)
    assert report.odoo_calls == first - (1 if protocol == "jsonrpc" else 0)
    # every company redone against an Odoo that already has everything: lookups only, no write
    clear_sync_status(owner_conn)
    sim.reset_log()
    writes = sim.write_count
    redo = run_sync_stage(sync_ctx(app_db, s))
    resync = len(sim.log)
    assert redo.errors == 0 and sim.write_count == writes and model_counts(sim)["res.partner"] == COMPANIES + 40
    assert resync <= RESYNC_MAX_CALLS_PER_COMPANY * COMPANIES and resync < first, (first, resync)
    assert_no_duplicates(sim)
    print(f"\n[{protocol}] {COMPANIES} companies: first sync {first} calls ({first / COMPANIES:.2f}/company), "
          f"unchanged re-sync {resync} ({resync / COMPANIES:.2f}/company)")  # fmt: skip


def test_same_changes_are_written_in_one_call(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "json2", n=COMPANIES)
    s = settings(odoo_sync_chunk_size=COMPANIES)  # one chunk
    run_sync_stage(sync_ctx(app_db, s))
    ceos = [p["id"] for p in sim.records("res.partner") if p.get("function") == "CEO"]
    assert len(ceos) == 20
    sim.store.call("res.partner", "write", ids=ceos, args=[], kwargs={"vals": {"function": "Janitor"}})  # by hand
    clear_sync_status(owner_conn)
    sim.reset_log()
    report = run_sync_stage(sync_ctx(app_db, s))
    assert report.items["res.partner:updated"] == 20
    assert orm_calls(sim, "res.partner", "write") == 1  # twenty contacts, one set of changes, one call
    assert {p["function"] for p in sim.records("res.partner") if p["id"] in ceos} == {"CEO"}


def test_an_odoo_16_keys_companies_by_ref_in_batches(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    with OdooSim(db="sandbox", users={"admin": SECRET}, partner_registry=False) as legacy:
        seeded = scored_night(app_db, owner_conn, legacy, "jsonrpc", n=12)
        s = settings(odoo_sync_chunk_size=5)
        report = run_sync_stage(sync_ctx(app_db, s))
        assert report.errors == 0 and report.counts().done == 12
        companies = [p for p in legacy.records("res.partner") if p["is_company"]]
        assert sorted(p["ref"] for p in companies) == sorted(x.uen for x in seeded)
        clear_sync_status(owner_conn)
        writes = legacy.write_count
        again = run_sync_stage(sync_ctx(app_db, s))
        assert again.errors == 0 and legacy.write_count == writes
        assert len([p for p in legacy.records("res.partner") if p["is_company"]]) == 12


def test_requests_in_flight_stay_within_the_limit(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    # an Odoo with more workers than the limit, answering slowly: the sync could use them all, and must not
    realistic = SandboxProfile.parse("realistic", 20.0)
    with OdooSim(db="sandbox", users={"admin": SECRET}, profile=realistic, workers=8) as slow:
        scored_night(app_db, owner_conn, slow, "json2", n=30)
        report = run_sync_stage(sync_ctx(app_db, settings(odoo_sync_chunk_size=4, odoo_max_in_flight=2)))
        assert report.errors == 0 and report.counts().done == 30
        assert slow.workers.peak_busy == 2  # concurrent, and never more than two at once


def test_odoo_dying_mid_night_stops_the_stage_and_a_rerun_completes(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    # slow enough (5-15 ms a call) that the night is far from done when Odoo dies after the first chunk
    sim = OdooSim(db="sandbox", users={"admin": SECRET}, profile=SandboxProfile.parse("realistic", 20.0)).start()
    try:
        dying_night(app_db, owner_conn, sim)
    finally:
        sim.stop()


def dying_night(app_db: Database, owner_conn: Any, sim: OdooSim) -> None:
    seeded = scored_night(app_db, owner_conn, sim, "json2", n=COMPANIES)

    def kill_after_first_chunk() -> None:
        deadline = time.monotonic() + 30
        while sim.counts()["res.partner"] < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        sim.stop()  # Odoo goes away mid-night: every later request is refused at connect

    killer = threading.Thread(target=kill_after_first_chunk)
    killer.start()
    with pytest.raises(OdooError, match="unreachable"):
        run_sync_stage(sync_ctx(app_db, settings(odoo_sync_chunk_size=3, odoo_max_in_flight=1)))
    killer.join()
    statuses = dict(rows(owner_conn, "SELECT status, count(*) FROM company_stage_status WHERE stage = %s "
                                     "GROUP BY status", STAGE))  # fmt: skip
    assert statuses.get("failed", 0) >= UNREACHABLE_LIMIT
    assert sum(statuses.values()) < len(seeded)  # it stopped: the rest were never tried
    sim.start()  # Odoo is back (on a new port, same database)
    connect(owner_conn, sim, "json2")
    report = run_sync_stage(sync_ctx(app_db))
    assert report.errors == 0
    assert model_counts(sim) == {"res.partner": COMPANIES + 40, "crm.lead": 20, "crm.tag": 1}
    assert_no_duplicates(sim)
    assert rows(owner_conn, "SELECT count(*) FROM company_stage_status WHERE stage = %s AND status = 'done'",
                STAGE) == [(len(seeded),)]  # fmt: skip


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_credentials_refused_mid_night_stop_the_stage_as_one_config_error(
    app_db: Database, owner_conn, sim, protocol
) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, protocol, n=12)
    sim.fail_next(1, status=401, method="search_read", model="res.partner")  # a chunk's lookup is refused
    with pytest.raises(ConfigError, match="rejected the credentials") as info:
        run_sync_stage(sync_ctx(app_db, settings(odoo_sync_chunk_size=4)))
    assert SECRET not in str(info.value)
    assert rows(owner_conn, "SELECT count(*) FROM odoo_sync_log WHERE status = 'error'") == [(0,)]


def test_an_address_refused_mid_night_stops_the_sync_not_one_item() -> None:
    """A name that came to resolve to 169.254.169.254 after the night's first connections: the
    guard's refusal reaches the chunk as one item's result, and must stop the stage (every later
    item would be refused alike), as refused credentials do, not be logged item by item."""
    from leadgen_core.errors import OdooAddressForbidden
    from leadgen_core.leads.sync_chunk import _Results

    results = _Results([], secrets=(SECRET,))
    results.items[1] = []
    refused = OdooAddressForbidden("odoo: refused to connect to odoo.example (169.254.169.254): cloud metadata address")
    with pytest.raises(OdooAddressForbidden) as info:
        results.add(1, "res.partner", "uen:1", refused)
    assert isinstance(info.value, ConfigError) and results.items[1] == []


def _const(vals: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    return lambda _found: vals


async def _no_fallback() -> SyncOutcome:
    raise AssertionError("the batch needed no item-by-item fallback")


def test_a_key_twice_in_one_batch_makes_one_record(sim: OdooSim) -> None:
    async def upsert_twice() -> list[Any]:
        client = Json2Client(base_url=sim.base_url, db="sandbox", api_key=SECRET)
        try:
            (parent,) = await client.create_many("res.partner", [{"name": "Acme", "is_company": True}])
            wanted = []
            for email in ("ann@acme.example", "ANN@acme.example"):  # one address, spelled twice
                vals = {"name": "Ann", "email": email.lower(), "parent_id": parent}
                wanted.append(Wanted(match=contact_key(parent, email), build=_const(vals), single=_no_fallback))
            return await upsert_batch(client, model="res.partner", wanted=wanted,
                                      domain=contacts_domain([(parent, "ann@acme.example")]),
                                      key_of=contact_key_of, fields=["name", "email", "parent_id"])  # fmt: skip
        finally:
            await client.close()

    first, repeat = asyncio.run(upsert_twice())
    assert isinstance(first, SyncOutcome) and first.action == "created"
    assert repeat == SyncOutcome("unchanged", "res.partner", first.odoo_id)
    assert len([p for p in sim.records("res.partner") if p["email"]]) == 1
