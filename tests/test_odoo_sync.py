"""The Odoo sync stage and the CRM assets, end to end, for both Odoo protocols.

Real: Postgres (evidence seeded as the owner, stages run as the application role under RLS),
scoring, the JSON-RPC and JSON-2 clients over loopback sockets with their retries, the idempotent
upserts, stage status and odoo_sync_log, Dagster's own execution of `lead_scores` and `odoo_sync`.
Simulated: Odoo (OdooSim, in-memory models; `fail_next` injects refused and lost answers) and
OpenAI (OpenAISim). A "kill" is a real cancellation of the running sync mid-batch.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest
import yaml

from leadgen_core.db.pool import Database
from leadgen_core.errors import ConfigError
from leadgen_core.leads.score_stage import run_score_stage
from leadgen_core.leads.sync_stage import STAGE, SyncContext, SyncReport, run_sync_stage, sync_night
from leadgen_core.odoo import LEAD_KEY_FIELD, PROTOCOLS, RetryPolicy, lead_key
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.settings import Settings
from leadgen_dagster.assets.crm import CRM_ASSETS, lead_scores, odoo_sync
from leadgen_dagster.instance import render_instance_yaml
from tests.conftest import DbHandle
from tests.dagster_helpers import add_partitions, resources
from tests.test_scoring_stage import DAY, TENANT, add_contact, rows, score_ctx, seed_night, settings

SECRET = "odoo-s3cret-7c41aa"
SECRET_VAR = "ODOO_TEST_SECRET"
FAST_RETRY = RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.02, max_retry_after_s=0.1)
# 9 targets: 3 high (CEO + info@ mailbox), 3 mid (a manager), 3 low (no contact)
EXPECTED = {"res.partner": 9 + 6, "crm.lead": 3, "crm.tag": 1}


@pytest.fixture(scope="module")
def odoo() -> Iterator[OdooSim]:
    with OdooSim(db="sandbox", users={"admin": SECRET}) as sim:
        yield sim


@pytest.fixture
def sim(odoo: OdooSim) -> OdooSim:
    odoo.reset()
    return odoo


def connect(owner: psycopg.Connection, sim: OdooSim, protocol: str) -> None:
    owner.execute(
        "UPDATE odoo_connections SET base_url = %s, protocol = %s, db_name = 'sandbox', login = 'admin', "
        "secret_ref = %s WHERE tenant_id = %s",
        (sim.base_url, protocol, f"env:{SECRET_VAR}", TENANT),
    )


def sync_ctx(db: Database, s: Settings | None = None, *, environ: dict[str, str] | None = None,
             dry_run: bool = False) -> SyncContext:  # fmt: skip
    return SyncContext(
        tenant_id=TENANT, day=DAY, settings=s or settings(), tenant_conn=lambda: db.tenant_transaction(TENANT),
        environ={SECRET_VAR: SECRET} if environ is None else environ, dry_run=dry_run, retry=FAST_RETRY,
    )  # fmt: skip


def scored_night(db: Database, owner: psycopg.Connection, sim: OdooSim, protocol: str, **kw: Any) -> list:
    seeded = seed_night(owner, **kw)
    run_score_stage(score_ctx(db, settings()))
    connect(owner, sim, protocol)
    return seeded


def model_counts(sim: OdooSim) -> dict[str, int]:
    return {k: v for k, v in sim.counts().items() if v}


def assert_no_duplicates(sim: OdooSim) -> None:
    partners = sim.records("res.partner")
    uens = [p["company_registry"] for p in partners if p.get("is_company")]
    emails = [p["email"] for p in partners if not p.get("is_company")]
    keys = [lead[LEAD_KEY_FIELD] for lead in sim.records("crm.lead")]
    for values in (uens, emails, keys):
        assert len(values) == len(set(values)), Counter(values).most_common(2)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_is_complete_and_idempotent(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    seeded = scored_night(app_db, owner_conn, sim, protocol)
    report = run_sync_stage(sync_ctx(app_db))
    assert model_counts(sim) == EXPECTED and report.errors == 0 and report.counts().done == len(seeded)
    highs = {s.uen: s for s in seeded if s.level == "high"}
    leads = sim.records("crm.lead")
    assert {lead[LEAD_KEY_FIELD] for lead in leads} == {lead_key(tenant=TENANT, uen=u) for u in highs}
    partner_of = {p["company_registry"]: p["id"] for p in sim.records("res.partner") if p.get("is_company")}
    assert {lead["partner_id"] for lead in leads} == {partner_of[u] for u in highs}
    assert all(lead["email_from"].startswith("alice@") for lead in leads)  # the best contact
    log = Counter(rows(owner_conn, "SELECT model, action, status FROM odoo_sync_log"))
    assert log == {("res.partner", "created", "ok"): 15, ("crm.lead", "created", "ok"): 3,
                   ("crm.lead", "below_threshold", "skipped"): 6}  # fmt: skip
    # a second materialisation finds nothing pending and writes nothing
    writes = sim.write_count
    assert run_sync_stage(sync_ctx(app_db)).pending == 0 and sim.write_count == writes
    # even when every company is redone, the upserts find what exists and change nothing
    owner_conn.execute("DELETE FROM company_stage_status WHERE stage = %s", (STAGE,))
    redo = run_sync_stage(sync_ctx(app_db))
    assert sim.write_count == writes and model_counts(sim) == EXPECTED
    assert set(redo.items) == {"res.partner:unchanged", "crm.lead:unchanged", "crm.lead:below_threshold"}
    assert_no_duplicates(sim)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_killed_mid_batch_then_reexecuted(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, protocol)

    async def kill_after_first_partner() -> None:
        task = asyncio.create_task(sync_night(sync_ctx(app_db)))
        while sim.counts().get("res.partner", 0) < 2 and not task.done():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(kill_after_first_partner())
    partial = model_counts(sim)
    assert partial.get("res.partner", 0) < EXPECTED["res.partner"]  # really stopped part-way
    report = run_sync_stage(sync_ctx(app_db))
    assert report.errors == 0 and model_counts(sim) == EXPECTED
    assert_no_duplicates(sim)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_item_errors_do_not_abort_the_batch(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    seeded = scored_night(app_db, owner_conn, sim, protocol)
    first = seeded[0]
    # Odoo refuses the first company (a constraint): the batched create of the chunk's companies rolls
    # back as a whole, and its answer is lost on top (502 after applying); the chunk is redone item by item
    sim.store.reject("res.partner", "company_registry", first.uen)
    sim.fail_next(1, status=502, after_apply=True, method="create", model="res.partner")
    report = run_sync_stage(sync_ctx(app_db))
    assert report.errors == 1 and report.counts().failed == 1 and report.counts().done == len(seeded) - 1
    (error,) = rows(owner_conn, "SELECT model, item_key, error FROM odoo_sync_log WHERE status = 'error'")
    assert error[:2] == ("res.partner", first.uen) and "ValidationError" in error[2]
    assert model_counts(sim) == {"res.partner": 13, "crm.lead": 2, "crm.tag": 1}  # all but the first company
    assert_no_duplicates(sim)  # the lost answer did not make a second record
    sim.store.clear_rejections()
    retry = run_sync_stage(sync_ctx(app_db))
    assert retry.pending == 1 and retry.errors == 0 and model_counts(sim) == EXPECTED
    assert_no_duplicates(sim)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_lost_batched_create_is_found_not_repeated(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    seeded = scored_night(app_db, owner_conn, sim, protocol)
    # the tags, then the companies, are created but their answers are lost
    sim.fail_next(1, status=504, after_apply=True, method="create", model="crm.tag")
    sim.fail_next(1, status=504, after_apply=True, method="create", model="res.partner")
    report = run_sync_stage(sync_ctx(app_db))
    assert report.errors == 0 and report.counts().done == len(seeded) and model_counts(sim) == EXPECTED
    assert_no_duplicates(sim)


def test_export_threshold_is_respected(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "jsonrpc")
    run_sync_stage(sync_ctx(app_db, settings(score_min_export=0.5)))
    scores = dict(rows(owner_conn, "SELECT c.uen, s.score FROM lead_scores s JOIN companies c USING (company_id)"))
    exported = {lead[LEAD_KEY_FIELD] for lead in sim.records("crm.lead")}
    assert exported == {lead_key(tenant=TENANT, uen=u) for u, sc in scores.items() if sc >= 0.5}
    assert 0 < len(exported) < len(scores)
    for lead in sim.records("crm.lead"):
        assert lead["probability"] >= 50


def test_suppressions_and_freemail_policy(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    seeded = scored_night(app_db, owner_conn, sim, "json2")
    high_a, high_b, high_c = (s for s in seeded if s.level == "high")
    add_contact(owner_conn, high_b.company_id, name="Dan Ong", title="CFO", email="dan@partner.example", status="valid")
    add_contact(owner_conn, high_c.company_id, name="Eve", title="CTO", email="eve.tan@gmail.com", status="valid",
                free=True)  # fmt: skip
    # added after scoring, before the sync: the sync must still honour them
    owner_conn.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, %s, 'email'),"
                       " (%s, 'partner.example', 'domain')", (TENANT, f"alice@{high_a.domain}", TENANT))  # fmt: skip
    run_sync_stage(sync_ctx(app_db, settings(freemail_policy="exclude")))
    partners = sim.records("res.partner")
    assert high_a.uen not in {p.get("company_registry") for p in partners}
    emails = {p["email"] for p in partners if p.get("email")}
    assert not emails & {f"alice@{high_a.domain}", "dan@partner.example", "eve.tan@gmail.com"}
    assert f"alice@{high_b.domain}" in emails and high_b.uen in {p.get("company_registry") for p in partners}
    skipped = set(rows(owner_conn, "SELECT item_key, action FROM odoo_sync_log WHERE status = 'skipped' "
                                   "AND model = 'res.partner'"))  # fmt: skip
    assert skipped == {(high_a.uen, "suppressed"), ("dan@partner.example", "suppressed"),
                       ("eve.tan@gmail.com", "freemail")}  # fmt: skip
    assert rows(owner_conn, "SELECT status FROM company_stage_status WHERE company_id = %s AND stage = %s",
                high_a.company_id, STAGE) == [("skipped",)]  # fmt: skip


def test_targets_scoring_skipped_are_closed_not_left_pending(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    first, *_ = seed_night(owner_conn, n=3)
    owner_conn.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, %s, 'domain')",
                       (TENANT, first.domain))  # fmt: skip
    run_score_stage(score_ctx(app_db, settings()))  # skips the suppressed company
    connect(owner_conn, sim, "jsonrpc")
    report = run_sync_stage(sync_ctx(app_db))
    assert report.unscored == 0 and Counter(o.status for o in report.outcomes) == {"skipped": 1, "done": 2}
    assert rows(owner_conn, "SELECT reason FROM company_stage_status WHERE stage = %s AND company_id = %s",
                STAGE, first.company_id) == [("not_scored",)]  # fmt: skip
    assert run_sync_stage(sync_ctx(app_db)).pending == 0


def test_dry_run_makes_no_odoo_call(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "jsonrpc")
    report: SyncReport = run_sync_stage(sync_ctx(app_db, dry_run=True, environ={}))  # no secret needed
    assert sim.write_count == 0 and sim.log == [] and model_counts(sim) == {}
    assert report.items["res.partner:would_write"] == 15 and report.items["crm.lead:would_write"] == 3
    assert rows(owner_conn, "SELECT count(*) FROM odoo_sync_log") == [(0,)]
    assert rows(owner_conn, "SELECT count(*) FROM company_stage_status WHERE stage = %s", STAGE) == [(0,)]


def test_missing_secret_names_only_the_variable(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, "jsonrpc")
    with pytest.raises(ConfigError, match=SECRET_VAR):
        run_sync_stage(sync_ctx(app_db, environ={}))
    assert sim.log == []
    owner_conn.execute("UPDATE odoo_connections SET active = false")
    with pytest.raises(ConfigError, match="no active Odoo connection"):
        run_sync_stage(sync_ctx(app_db))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_rejected_credentials_stop_the_stage_without_leaking(app_db: Database, owner_conn, sim, protocol) -> None:  # type: ignore[no-untyped-def]
    scored_night(app_db, owner_conn, sim, protocol)
    wrong = "wr0ng-odoo-secret-55"
    with pytest.raises(ConfigError, match="rejected the credentials") as info:
        run_sync_stage(sync_ctx(app_db, environ={SECRET_VAR: wrong}))
    assert wrong not in str(info.value) and SECRET_VAR in str(info.value)
    assert sim.write_count == 0
    assert rows(owner_conn, "SELECT count(*) FROM odoo_sync_log") == [(0,)]


def test_unreachable_odoo_stops_the_stage_and_leaves_the_rest_pending(app_db: Database, owner_conn, sim) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.errors import OdooError

    seeded = scored_night(app_db, owner_conn, sim, "json2")
    owner_conn.execute("UPDATE odoo_connections SET base_url = 'http://127.0.0.1:9'")  # nothing listens there
    with pytest.raises(OdooError, match="unreachable") as info:
        run_sync_stage(sync_ctx(app_db))
    assert SECRET not in str(info.value)
    # the first call could not connect: no company was tried, every one is left pending
    assert rows(owner_conn, "SELECT count(*) FROM company_stage_status WHERE stage = %s", STAGE) == [(0,)]
    # Odoo is back: a re-execution syncs everything
    connect(owner_conn, sim, "json2")
    report = run_sync_stage(sync_ctx(app_db))
    assert report.errors == 0 and model_counts(sim) == EXPECTED and report.counts().done == len(seeded)


# --- the assets -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openai() -> Iterator[OpenAISim]:
    sim = OpenAISim(api_key="sk-asset-test")
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


# the instance's logging as `leadgen instance render` writes it (leadgen_core's loggers managed)
RENDERED_PYTHON_LOGS = yaml.safe_load(render_instance_yaml(Settings()))["python_logs"]
STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}"  # Dagster's console lines


def materialize(db: DbHandle, instance: dg.DagsterInstance, raise_on_error: bool = True,
                **tags: str) -> dg.ExecuteInJobResult:  # fmt: skip
    return dg.materialize(CRM_ASSETS, partition_key=f"{DAY.isoformat()}|{TENANT}", resources=resources(db.app_dsn),
                          instance=instance, tags=tags, raise_on_error=raise_on_error)  # fmt: skip


@pytest.fixture
def night(clean_db: DbHandle, owner_conn, sim, openai, monkeypatch):  # type: ignore[no-untyped-def]
    seed_night(owner_conn)
    connect(owner_conn, sim, "json2")
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-asset-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{openai.base_url}/v1")
    openai.reset_log()
    with dg.instance_for_test(overrides={"python_logs": RENDERED_PYTHON_LOGS}) as instance:
        add_partitions(instance, TENANT)
        yield clean_db, instance


def test_asset_definitions() -> None:
    assert (lead_scores.op.pool, odoo_sync.op.pool) == (None, None)  # pools only for the registry download
    assert lead_scores.group_names_by_key == {lead_scores.key: "scoring"}
    assert odoo_sync.group_names_by_key == {odoo_sync.key: "crm"}
    assert lead_scores.asset_deps[lead_scores.key] == {dg.AssetKey("email_verifications")}
    assert odoo_sync.asset_deps[odoo_sync.key] == {lead_scores.key}


def test_assets_materialise_with_metadata_and_no_secret(night, sim, openai, owner_conn) -> None:  # type: ignore[no-untyped-def]
    db, instance = night
    result = materialize(db, instance)
    assert result.success
    (scored,) = result.asset_materializations_for_node("lead_scores")
    scores = scored.metadata
    assert scores["scored"].value == 9
    assert [scores[f"bucket_{b}"].value for b in ("high", "medium", "low")] == [3, 3, 3]
    assert scores["dagster/row_count"].value == 9 and scores["units_openai"].value == scores["openai_tokens"].value
    columns = {c.name for c in scores["dagster/column_schema"].value.columns}
    assert {"tenant_id", "company_id", "score", "bucket"} <= columns
    assert scores["rationale_sources"].value == {"llm": 9} and scores["openai_tokens"].value > 0
    assert scores["rationale_requests"].value == 1  # nine rationales, one request
    assert "| 1 | Company" in scores["top_leads"].value and 0 < scores["avg_score"].value < 1
    (sync,) = result.asset_materializations_for_node("odoo_sync")
    assert sync.metadata["leads_exported"].value == 3 and sync.metadata["item_errors"].value == 0
    assert 0 < sync.metadata["odoo_calls"].value <= len(sim.log)
    # the same numeric keys as every other stage, and one plottable count per Odoo model
    assert isinstance(sync.metadata["items"].value, int) and sync.metadata["synced_crm_lead"].value == 3
    assert sync.metadata["synced_res_partner"].value > 0
    assert model_counts(sim) == EXPECTED
    events = instance.all_logs(result.run_id)
    assert events and not any(SECRET in str(e) for e in events)
    assert not any(SECRET in str(r) for r in rows(owner_conn, "SELECT * FROM odoo_sync_log"))


def test_an_odoo_retry_line_has_a_timestamp_and_names_the_tenant(night, sim, openai, capfd) -> None:  # type: ignore[no-untyped-def]
    db, instance = night
    sim.fail_next(1, status=503)  # the night's first Odoo request: a transient 503, retried
    result = materialize(db, instance)
    assert result.success
    err = capfd.readouterr().err
    line = rf"^{STAMP} - dagster - WARNING - \S+ - {result.run_id} - odoo_sync - odoo \S+ for tenant {TENANT}: HTTP 503; retry 1 of \d+ in "
    assert re.search(line, err, re.M), err[-3000:]
    # the same line is in the run's event log, as the UI shows it
    (record,) = [e for e in instance.all_logs(result.run_id) if "retry 1 of" in e.user_message]
    assert f"for tenant {TENANT}: HTTP 503" in record.user_message and record.step_key == "odoo_sync"
    assert record.level == logging.WARNING and SECRET not in record.user_message


def test_a_night_failed_by_a_dead_odoo_names_the_cause_on_its_first_line(night, owner_conn) -> None:  # type: ignore[no-untyped-def]
    db, instance = night
    owner_conn.execute("UPDATE odoo_connections SET base_url = 'http://127.0.0.1:9'")  # nothing listens there
    result = materialize(db, instance, raise_on_error=False)
    assert not result.success
    # what the run page shows, from the instance's event log: the step's and the run's error
    events = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event]
    kinds = [e.event_type_value for e in events]
    assert kinds.count("STEP_UP_FOR_RETRY") == 2  # transient: retried by the RetryPolicy first
    (step,) = [e.step_failure_data.error for e in events if e.event_type_value == "STEP_FAILURE"]
    (run,) = [e.event_specific_data.error for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    cause = f"odoo_sync for tenant {TENANT}: Odoo at http://127.0.0.1:9 is unreachable for tenant {TENANT}"
    for error in (step, run):
        first = error.message.splitlines()[0]
        assert cause in first and "max_retries" not in error.message, error.message


def test_a_night_whose_odoo_url_is_a_metadata_address_fails_at_once_saying_so(night, sim, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """A URL edited by hand to the cloud metadata service: no request leaves, no retry, the reason shown."""
    db, instance = night
    owner_conn.execute("UPDATE odoo_connections SET base_url = 'http://169.254.169.254'")
    result = materialize(db, instance, raise_on_error=False)
    assert not result.success
    events = [e.dagster_event for e in instance.all_logs(result.run_id) if e.dagster_event]
    assert [e.event_type_value for e in events].count("STEP_UP_FOR_RETRY") == 0  # permanent: not retried
    (step,) = [e.step_failure_data.error for e in events if e.event_type_value == "STEP_FAILURE"]
    assert "refused to connect to 169.254.169.254: cloud metadata address" in step.message.splitlines()[0]
    assert SECRET not in step.message
    assert sim.log == []  # nothing reached an Odoo


def test_dry_run_tag_calls_no_vendor_and_writes_nothing(night, sim, openai, owner_conn) -> None:  # type: ignore[no-untyped-def]
    db, instance = night
    result = materialize(db, instance, **{"leadgen/dry_run": "true"})
    assert result.success
    assert openai.requests_to("/v1/chat/completions") == [] and sim.write_count == 0
    (scores,) = result.asset_materializations_for_node("lead_scores")
    assert scores.metadata["forecast"].value["calls"] == {"openai": 1}  # 9 rationales share one request
    assert "Dry run" in scores.metadata["top_leads"].value and "| 1 | Company" in scores.metadata["top_leads"].value
    assert rows(owner_conn, "SELECT count(*) FROM lead_scores") == [(0,)]
