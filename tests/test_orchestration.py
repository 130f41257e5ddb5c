"""The Dagster side: definitions, schedule ticks, sensors, checks and targeting materialisations.

Real: Postgres (tenant data read and written as the application role), Dagster's own execution
(`dg.materialize` and schedule/sensor evaluation on a test instance), and a loopback HTTP server
receiving alert webhooks. The registry is a synthetic ACRA extract in the real ACRA format.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest

from leadgen_core.clock import today_sg
from leadgen_core.sandbox.base import SimResponse, SimServer
from leadgen_dagster.assets.registry import companies
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from leadgen_dagster.definitions import defs
from leadgen_dagster.partitions import parse_tenant_date
from leadgen_dagster.sensors import last_due_night
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry, resources

SGT = ZoneInfo("Asia/Singapore")
DAY = date(2026, 3, 2)
TECH = {"industries": ["software", "information technology"], "incorporation_year": {"min": 1990, "max": 2025}}
LOGISTICS = {"industries": ["logistics", "freight"], "ssic_codes": ["52"]}


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def registry(clean_db: DbHandle) -> DbHandle:
    load_registry(clean_db.owner_dsn, rows=4000, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules=TECH)
        add_tenant(conn, "beta", rules=LOGISTICS)
    return clean_db


def materialize_night(
    db: DbHandle, instance: dg.DagsterInstance, tenant: str, day: date = DAY, *, reselect: bool = False
) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [icp_candidates, daily_targets],
        partition_key=f"{day.isoformat()}|{tenant}",
        resources=resources(db.app_dsn),
        instance=instance,
        selection=[icp_candidates, daily_targets],
        tags={"leadgen/reselect": "true"} if reselect else None,
    )


def q(dsn: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_definitions_are_exactly_the_expected_set() -> None:
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == {
        "acra_staging",
        "companies",
        "icp_candidates",
        "daily_targets",
        "crawled_sites",
        "web_extractions",
        "contacts",
        "email_verifications",
        "lead_scores",
        "odoo_sync",
    }
    assert {k.to_user_string() for k in repo.asset_graph.asset_check_keys} == {
        "daily_targets:targets_not_empty",
        "daily_targets:targets_stable",
        "lead_scores:scores_consistent",
        "contacts:contacts_clean",
        "email_verifications:verifications_not_repeated",
        "odoo_sync:night_within_sla",
        "odoo_sync:vendor_budgets_within_caps",
    }
    assert {s.name for s in repo.schedule_defs} == {"nightly_schedule", "retention_schedule"}
    assert {s.name for s in repo.sensor_defs} == {
        "tenant_partitions_sensor",
        "night_launcher_sensor",
        "background_jobs_sensor",
        "run_failure_alert_sensor",
        "sla_deadline_sensor",
        "night_summary_sensor",
    }
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        "registry_refresh_job",
        "tenant_night_job",
        "staging_upsert_job",
        "retention_job",
    }
    nightly = repo.get_schedule_def("nightly_schedule")
    assert nightly.cron_schedule == "0 1 * * *" and nightly.execution_timezone == "Asia/Singapore"
    assert nightly.job_name == "registry_refresh_job"  # the night opens with the registry; the sensor follows
    # one current registry snapshot: unpartitioned, so any tenant×date partition can run on it
    for key in ("acra_staging", "companies"):
        assert repo.asset_graph.get(dg.AssetKey(key)).partitions_def is None


def test_schedule_tick_at_0100_sgt_opens_the_night_with_the_registry(clean_db, instance) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2026, 3, 2, 1, 0, tzinfo=SGT)
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        repository_def=defs.get_repository_def(),
        resources=resources(clean_db.app_dsn),
    ) as ctx:
        result = defs.get_repository_def().get_schedule_def("nightly_schedule").evaluate_tick(ctx)
    (req,) = result.run_requests or []
    assert req.partition_key is None and req.run_key == "registry-2026-03-02"
    assert req.tags["leadgen/night_date"] == "2026-03-02" and int(req.tags["dagster/priority"]) > 5
    assert datetime.fromisoformat(req.tags["leadgen/night_start"]) == when  # the SLA clock starts here


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"alpha", "beta"}),
        ({"SCHED_TENANT_INCLUDE": "beta"}, {"beta"}),
        ({"SCHED_TENANT_EXCLUDE": "beta"}, {"alpha"}),
    ],
)
def test_tenant_sync_sensor(clean_db, instance, owner_conn, monkeypatch, env, expected) -> None:  # type: ignore[no-untyped-def]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    add_tenant(owner_conn, "alpha")
    add_tenant(owner_conn, "beta")
    add_tenant(owner_conn, "gone")
    add_partitions(instance, "gone", "ghost")  # ghost: a partition typed into the UI for no tenant
    owner_conn.execute("UPDATE tenants SET status = 'inactive' WHERE tenant_id = 'gone'")
    sensor = defs.get_repository_def().get_sensor_def("tenant_partitions_sensor")
    with dg.build_sensor_context(instance=instance, resources=resources(clean_db.app_dsn)) as ctx:
        result = sensor.evaluate_tick(ctx)
    added = {
        k
        for r in result.dynamic_partitions_requests
        if isinstance(r, dg.AddDynamicPartitionsRequest)
        for k in r.partition_keys
    }
    removed = {
        k
        for r in result.dynamic_partitions_requests
        if isinstance(r, dg.DeleteDynamicPartitionsRequest)
        for k in r.partition_keys
    }
    # a deactivated tenant keeps its partition (its history stays visible); a tenant-less one goes
    assert added == expected and removed == {"ghost"}
    # deactivation never deletes data
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM tenants WHERE tenant_id = 'gone'") == [(1,)]


def test_a_staggered_night_waits_its_start_before_the_first_stage(registry, instance) -> None:  # type: ignore[no-untyped-def]
    """The schedule's `leadgen/start_after_s` holds icp_candidates back that long (untagged: no wait)."""
    import time

    add_partitions(instance, "alpha")
    began = time.monotonic()
    result = dg.materialize(
        [icp_candidates], partition_key=f"{DAY.isoformat()}|alpha", resources=resources(registry.app_dsn),
        instance=instance, tags={"leadgen/start_after_s": "1.5"},
    )  # fmt: skip
    assert result.success and time.monotonic() - began >= 1.5
    said = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("staggered start: waiting 1.5 s" in m for m in said), said
    plain = dg.materialize([icp_candidates], partition_key=f"{DAY.isoformat()}|alpha",
                           resources=resources(registry.app_dsn), instance=instance)  # fmt: skip
    assert not any("staggered start" in e.user_message for e in instance.all_logs(plain.run_id))


def test_targeting_two_tenants_cap_priority_isolation_idempotence(registry, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "25")
    add_partitions(instance, "alpha", "beta")
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenant_budgets (tenant_id, vendor, daily_cap) VALUES ('beta', 'targets', 10)")
    for tenant in ("alpha", "beta"):
        assert materialize_night(registry, instance, tenant).success
    a = q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha' ORDER BY priority")
    b = q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='beta' ORDER BY priority")
    assert len(a) == 25 and len(b) == 10  # env cap, and the per-tenant override
    # different ICP rules -> different industries
    a_codes = {
        r[0][:2]
        for r in q(
            registry.owner_dsn,
            "SELECT c.industry_code FROM daily_targets t JOIN companies c "
            "USING (company_id) WHERE tenant_id='alpha' AND c.industry_code = ANY("
            "SELECT code FROM ssic_ref WHERE level='subclass')",
        )
    }
    assert "62" in a_codes or "63" in a_codes
    from leadgen_core.icp.resolve import resolve_industries
    from leadgen_core.icp.rules import parse_rules

    with psycopg.connect(registry.owner_dsn) as conn:
        beta_codes = list(resolve_industries(conn, parse_rules(LOGISTICS)).codes)
    assert "52101" in beta_codes or any(c.startswith("52") for c in beta_codes)
    mismatched = q(
        registry.owner_dsn,
        "SELECT count(*) FROM daily_targets t JOIN companies c USING (company_id) "
        "WHERE tenant_id='beta' AND NOT (c.industry_code = ANY(%s) OR c.secondary_ssic_code = ANY(%s))",
        beta_codes,
        beta_codes,
    )
    assert mismatched == [(0,)]
    # priority: a company alpha already scored goes to the back
    first = a[0][0]
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
            "rationale_source) VALUES ('alpha', %s, %s, 0.5, 'medium', '{}', 'x', 'template')",
            (DAY - timedelta(days=1), first),
        )
    assert materialize_night(registry, instance, "alpha", reselect=True).success  # a fixed manifest otherwise
    a2 = [
        r[0]
        for r in q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha' ORDER BY priority")
    ]
    assert first not in a2[:24] and len(a2) == 25
    # idempotent: same inputs, same manifest
    assert materialize_night(registry, instance, "alpha").success
    a3 = [
        r[0]
        for r in q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha' ORDER BY priority")
    ]
    assert a3 == a2
    # still the same manifest after the night's own work: tonight's scores and contacts are not
    # "history" for tonight, so re-materialising the partition re-selects the same companies
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:
        for company_id in a2[:5]:
            conn.execute(
                "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
                "rationale_source) VALUES ('alpha', %s, %s, 0.7, 'high', '{}', 'x', 'template')",
                (DAY, company_id),
            )
            conn.execute("INSERT INTO contacts (company_id, email, source) VALUES (%s, %s, 'crawl')",
                         (company_id, f"ceo{company_id}@example.com"))  # fmt: skip
    assert materialize_night(registry, instance, "alpha").success
    a4 = [
        r[0]
        for r in q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha' ORDER BY priority")
    ]
    assert a4 == a2
    # isolation: as the app role, alpha sees only its own manifest
    with psycopg.connect(registry.app_dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('request.tenant_id', 'alpha', true)")
        assert conn.execute("SELECT DISTINCT tenant_id FROM daily_targets").fetchall() == [("alpha",)]


def test_suppressed_domains_are_excluded(registry, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "5")
    add_partitions(instance, "alpha")
    assert materialize_night(registry, instance, "alpha").success
    first = q(
        registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha' ORDER BY priority LIMIT 1"
    )[0][0]
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:
        conn.execute("UPDATE companies SET website_domain = 'blocked.example' WHERE company_id = %s", (first,))
        conn.execute(
            "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES ('alpha', 'blocked.example', 'domain')"
        )
    # the date's manifest is kept (fixed by its first night), but a company suppressed since leaves it
    assert materialize_night(registry, instance, "alpha").success
    ids = [r[0] for r in q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha'")]
    assert first not in ids and len(ids) == 4
    # a reselection fills the cap again, still without it
    assert materialize_night(registry, instance, "alpha", reselect=True).success
    ids = [r[0] for r in q(registry.owner_dsn, "SELECT company_id FROM daily_targets WHERE tenant_id='alpha'")]
    assert first not in ids and len(ids) == 5


def test_unknown_tenant_and_bad_keys_are_refused(registry, instance) -> None:  # type: ignore[no-untyped-def]
    add_partitions(instance, "ghost")
    result = dg.materialize(
        [icp_candidates],
        partition_key=f"{DAY}|ghost",
        resources=resources(registry.app_dsn),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert "not a known tenant id" in failure_text(result)
    for bad in ("2026-13-01|alpha", "nonsense", "2026-03-02|Bad_Tenant"):
        with pytest.raises(Exception, match="partition key"):
            parse_tenant_date(bad)


def test_configuration_errors_fail_at_once_and_are_not_retried(registry, instance) -> None:  # type: ignore[no-untyped-def]
    """crawled_sites retries transient failures (RetryPolicy); an unknown tenant is a configuration
    error: one attempt, and the failure's description names the cause."""
    from leadgen_dagster.assets.enrichment import crawled_sites

    assert crawled_sites.op.retry_policy is not None and crawled_sites.op.retry_policy.max_retries >= 1
    add_partitions(instance, "ghost")
    result = dg.materialize(
        [crawled_sites],
        partition_key=f"{DAY}|ghost",
        resources=resources(registry.app_dsn),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_FAILURE") == 1
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("crawled_sites: tenant 'ghost' is not a known tenant id"), description


def test_tenant_stage_fails_fast_without_any_registry_snapshot(clean_db, instance, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha", rules=TECH)
    add_partitions(instance, "alpha")
    result = dg.materialize(
        [icp_candidates],
        partition_key=f"{DAY}|alpha",
        resources=resources(clean_db.app_dsn),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    kinds = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in kinds  # no waiting, no retry: it says what to do
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "no registry snapshot yet" in failure.step_failure_data.user_failure_data.description


def failure_text(result: dg.ExecuteInJobResult) -> str:
    """Class names and messages of every step failure, causes included."""
    parts = []
    for event in result.all_events:
        if event.is_step_failure:
            err = event.event_specific_data.error
            while err is not None:
                parts.append(f"{err.cls_name}: {err.message}")
                err = err.cause
    return "\n".join(parts)


def run_check(
    db: DbHandle, instance: dg.DagsterInstance, name: str, tenant: str = "alpha", tags: dict[str, str] | None = None
) -> dg.AssetCheckEvaluation:
    """Re-run the night's first stage with one check (Dagster needs an asset in a partitioned run)."""
    from leadgen_dagster.definitions import CHECKS, TENANT_ASSETS

    check = next(c for c in CHECKS if any(k.name == name for k in c.check_keys))
    key = next(k for k in check.check_keys if k.name == name)
    result = dg.materialize(
        [*TENANT_ASSETS, check],
        partition_key=f"{DAY}|{tenant}",
        resources=resources(db.app_dsn),
        instance=instance,
        raise_on_error=False,
        selection=dg.AssetSelection.assets(icp_candidates) | dg.AssetSelection.checks(key),
        tags=tags,
    )
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


def test_data_checks_pass_on_a_sound_night_and_catch_real_anomalies(registry, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each check fails on the anomaly it exists for: an empty target set with eligible candidates,
    a swing from the previous night, a bucket that disagrees with its score, a suppressed address
    among the night's contacts, and an address paid for twice within the verification TTL."""
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "12")
    add_partitions(instance, "alpha")
    assert materialize_night(registry, instance, "alpha").success
    names = ("targets_not_empty", "targets_stable", "scores_consistent", "contacts_clean",
             "verifications_not_repeated")  # fmt: skip
    assert all(run_check(registry, instance, name).passed for name in names)
    owner = psycopg.connect(registry.owner_dsn, autocommit=True)
    targets = [r[0] for r in owner.execute("SELECT company_id FROM daily_targets ORDER BY priority").fetchall()]
    assert len(targets) == 12
    # the previous night had 40 targets: 12 is a -70% swing (a warning, not an error)
    owner.execute(
        "INSERT INTO daily_targets (tenant_id, run_date, company_id, priority) "
        "SELECT 'alpha', %s, company_id, row_number() OVER () FROM companies ORDER BY company_id LIMIT 40",
        (DAY - timedelta(days=1),),
    )
    stable = run_check(registry, instance, "targets_stable")
    assert not stable.passed and stable.severity == dg.AssetCheckSeverity.WARN
    assert stable.metadata["previous_targets"].value == 40 and "-70%" in (stable.description or "")
    # a score of 0.9 filed as "low"
    owner.execute(
        "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
        "rationale_source) VALUES ('alpha', %s, %s, 0.9, 'low', '{}', 'r', 'template')",
        (DAY, targets[0]),
    )
    scores = run_check(registry, instance, "scores_consistent")
    assert not scores.passed and scores.metadata["wrong_bucket"].value == 1
    # a contact no evidence ties to its company, then its evidence (the page that lists it)
    owner.execute("INSERT INTO contacts (company_id, email, source) VALUES (%s, 'ann@mail.blocked.sg', 'crawl')",
                  (targets[1],))  # fmt: skip
    bare = run_check(registry, instance, "contacts_clean")
    assert not bare.passed and bare.metadata["without_evidence"].value == 1
    owner.execute("INSERT INTO lead_emails (email, company_id, source, evidence_url) "
                  "VALUES ('ann@mail.blocked.sg', %s, 'crawl', 'https://blocked.sg/team')", (targets[1],))  # fmt: skip
    assert run_check(registry, instance, "contacts_clean").passed
    # the same address, at a subdomain of a domain the tenant then suppresses
    owner.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES ('alpha', 'blocked.sg', 'domain')")
    suppressed = run_check(registry, instance, "contacts_clean")
    assert not suppressed.passed and suppressed.metadata["suppressed"].value == 1
    # the address verified, then verified (paid) again the next day although the answer was fresh
    owner.execute("INSERT INTO email_verification_cache (email, status, verified_at) "
                  "VALUES ('ann@mail.blocked.sg', 'valid', now() - interval '1 day')")  # fmt: skip
    assert run_check(registry, instance, "verifications_not_repeated").passed
    owner.execute("UPDATE email_verification_cache SET verified_at = now()")
    repeated = run_check(registry, instance, "verifications_not_repeated")
    assert not repeated.passed and repeated.metadata["verified_twice"].value == 1
    # no targets although candidates are eligible: the blocking check stops the night
    owner.execute("DELETE FROM daily_targets WHERE run_date = %s", (DAY,))
    empty = run_check(registry, instance, "targets_not_empty")
    assert not empty.passed and "0 targets although" in (empty.description or "")
    owner.close()


def test_sla_check_passes_then_fails_on_breach(registry, instance) -> None:  # type: ignore[no-untyped-def]
    add_partitions(instance, "alpha")
    night = materialize_night(registry, instance, "alpha")
    assert night.success
    root = night.dagster_run.run_id
    again = {"dagster/root_run_id": root, "dagster/parent_run_id": root}  # a re-execution of that night
    evaluation = run_check(registry, instance, "night_within_sla", tags=again)
    assert evaluation.passed and 0 < evaluation.metadata["wall_s"].value < 60
    # an earlier stage of the same night that started 95 minutes before puts the night over 90
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO run_stage_stats (tenant_id, run_date, stage, dagster_run_id, started_at, finished_at) "
            "VALUES ('alpha', %s, 'slow_stage', %s, now() - interval '95 minutes', now() - interval '94 minutes')",
            (DAY, root),
        )
    evaluation = run_check(registry, instance, "night_within_sla", tags=again)
    assert not evaluation.passed and evaluation.metadata["wall_s"].value > 90 * 60


def test_sla_check_times_this_night_not_the_dates_first_run(registry, instance) -> None:  # type: ignore[no-untyped-def]
    """Re-materialising an old date days later is a new night: its clock starts with its own run."""
    add_partitions(instance, "alpha")
    assert materialize_night(registry, instance, "alpha").success
    with psycopg.connect(registry.owner_dsn, autocommit=True) as conn:  # that first night was 3 days ago
        conn.execute("UPDATE run_stage_stats SET started_at = started_at - interval '3 days', "
                     "finished_at = finished_at - interval '3 days'")  # fmt: skip
    evaluation = run_check(registry, instance, "night_within_sla")  # a new run: the date's night again
    assert evaluation.passed and 0 < evaluation.metadata["wall_s"].value < 60, evaluation.metadata


def test_budget_check_catches_an_overshoot_in_the_ledger(registry, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TAVILY_MAX_QUERIES", "10")
    add_partitions(instance, "alpha")
    owner = psycopg.connect(registry.owner_dsn, autocommit=True)
    owner.execute(  # the ledger is charged on the day the money is spent: today in Singapore
        "INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units) VALUES ('alpha', %s, 'tavily', 10)",
        (today_sg(),),
    )
    assert materialize_night(registry, instance, "alpha").success
    assert run_check(registry, instance, "vendor_budgets_within_caps").passed
    owner.execute("UPDATE vendor_usage SET units = 11")
    owner.close()
    evaluation = run_check(registry, instance, "vendor_budgets_within_caps")
    assert not evaluation.passed and evaluation.metadata["over_cap"].value == ["tavily"]


class Webhook(SimServer):
    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", "/hook", lambda req: SimResponse(200, {"ok": True}))


def test_deadline_sensor_flags_hung_failed_and_unstarted_nights_once(
    clean_db, instance, owner_conn, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from leadgen_dagster.definitions import TERMINAL_STAGE

    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        for tenant in ("alpha", "beta", "gamma", "delta", "epsilon"):
            add_tenant(owner_conn, tenant)
        # epsilon joined just now, after the night's deadline: it was never due that night
        owner_conn.execute("UPDATE tenants SET created_at = now() - interval '3 days' WHERE tenant_id <> 'epsilon'")
        day, _ = last_due_night(datetime.now(SGT), 90)
        started = datetime.combine(day, datetime.min.time(), SGT) + timedelta(hours=1)
        done = started + timedelta(minutes=5)
        # alpha hangs (its terminal stage started, never finished); beta finished; gamma failed in an
        # earlier stage (finished, the terminal stage never started); delta never started at all.
        owner_conn.execute(
            "INSERT INTO run_stage_stats (tenant_id, run_date, stage, started_at, finished_at) VALUES "
            "('alpha', %s, %s, %s, NULL), ('beta', %s, %s, %s, %s), ('gamma', %s, 'contacts', %s, NULL)",
            (day, TERMINAL_STAGE, started, day, TERMINAL_STAGE, started, done, day, started),
        )
        sensor = defs.get_repository_def().get_sensor_def("sla_deadline_sensor")
        with dg.build_sensor_context(instance=instance, resources=resources(clean_db.app_dsn)) as ctx:
            sensor.evaluate_tick(ctx)
        posts = [json.dumps(r.json()) for r in hook.requests_to("/hook")]
        flagged = sorted(t for t in ("alpha", "beta", "gamma", "delta", "epsilon") if any(t in p for p in posts))
        assert len(posts) == 3 and flagged == ["alpha", "delta", "gamma"], posts
        with dg.build_sensor_context(
            instance=instance, resources=resources(clean_db.app_dsn), cursor=ctx.cursor
        ) as ctx2:
            sensor.evaluate_tick(ctx2)
        assert len(hook.requests_to("/hook")) == 3  # alerted once per tenant and night


def test_instance_yaml_loads_with_run_limits(clean_db: DbHandle, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from leadgen_core.db.dsn import sqlalchemy_url
    from leadgen_dagster.cli.main import main

    monkeypatch.setenv("SCHED_TENANT_CONCURRENCY", "4")
    monkeypatch.setenv("SCHED_CATCHUP_NIGHTS", "5")
    monkeypatch.setenv("LEADGEN_DAGSTER_PG_URL", sqlalchemy_url(clean_db.owner_dsn, search_path="dagster"))
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    out = CliRunner().invoke(main, ["instance", "render"])  # the one way every deployment path renders it
    assert out.exit_code == 0 and "4 concurrent runs, catch-up 5 nights" in out.output, out.output
    with dg.DagsterInstance.from_config(str(home)) as inst:
        cfg = inst.get_concurrency_config()
        assert cfg.run_queue_config.max_concurrent_runs == 4
        limits = {
            (t["key"], json.dumps(t.get("value"))): t["limit"] for t in cfg.run_queue_config.tag_concurrency_limits
        }
        assert limits[("leadgen/tenant", json.dumps({"applyLimitPerUniqueValue": True}))] == 1
        # runs launched from the UI or by a backfill carry only Dagster's partition tags
        assert limits[("dagster/partition/tenant", json.dumps({"applyLimitPerUniqueValue": True}))] == 1
        assert limits[("dagster/backfill", "null")] == 2
        # only the registry download has a pool; any pool gets the file's default limit of 1
        assert cfg.pool_config.default_pool_limit == 1
        assert inst.scheduler.max_catchup_runs == 5
        # step failures are retried by the steps' own RetryPolicy, not by re-running the whole run
        assert inst.run_retries_enabled and not inst.run_retries_retry_on_asset_or_op_failure
    tables = q(clean_db.owner_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'dagster'")
    assert tables[0][0] > 5  # Dagster's storage lives in its own schema


def test_companies_asset_is_idempotent(clean_db, instance) -> None:  # type: ignore[no-untyped-def]
    counts = load_registry(clean_db.owner_dsn, rows=500, day=DAY, malformed_rate=0.05)
    assert counts.rejected > 0 and counts.staged + counts.rejected == 500
    reasons = {r[0].split(":")[0] for r in q(clean_db.owner_dsn, "SELECT reason FROM staging_acra_rejects")}
    assert {"bad_uen", "impossible_date", "unknown_ssic"} <= reasons
    res = dg.materialize([companies], resources=resources(clean_db.app_dsn), instance=instance)
    meta = res.asset_materializations_for_node("companies")[0].metadata
    assert meta["inserted"].value == 0 and meta["unchanged"].value == counts.staged  # load_registry already upserted


@pytest.mark.parametrize(
    ("now", "cron", "night", "deadline"),
    [
        ("2026-03-02T02:29", "0 1 * * *", "2026-03-01", "2026-03-01T02:30"),
        ("2026-03-02T02:31", "0 1 * * *", "2026-03-02", "2026-03-02T02:30"),
        ("2026-03-02T10:00", "30 3 * * 1-5", "2026-03-02", "2026-03-02T05:00"),  # Monday
        ("2026-03-01T10:00", "30 3 * * 1-5", "2026-02-27", "2026-02-27T05:00"),  # Sunday: Friday's night
        ("2026-03-02T23:59", "0 22 * * *", "2026-03-02", "2026-03-02T23:30"),
    ],
)
def test_deadline_follows_the_nightly_cron(now: str, cron: str, night: str, deadline: str) -> None:
    day, due = last_due_night(datetime.fromisoformat(now).replace(tzinfo=SGT), 90, cron)
    assert day.isoformat() == night and due == datetime.fromisoformat(deadline).replace(tzinfo=SGT)


@pytest.mark.parametrize("cron", ["0 1 * *", "61 1 * * *", "0 1 31 2 *", "x 1 * * *", "0 1/0 * * *"])
def test_a_bad_nightly_cron_is_a_config_error(cron: str) -> None:
    from leadgen_core.errors import ConfigError

    with pytest.raises(ConfigError, match="cron"):
        last_due_night(datetime(2026, 3, 2, tzinfo=SGT), 90, cron)
