"""Registry ingest through the ACRA datastore API, background upsert jobs, failure alerts, CLI.

Real: Postgres (tenant rows as the application role), the ACRA simulator on loopback speaking
CKAN's datastore_search format (with 429s), Dagster execution on a test instance, a loopback
webhook receiving alerts, and the CLI through click's runner.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.registry.jobs import enqueue_upsert
from leadgen_core.sandbox.acra import AcraSim
from leadgen_core.sandbox.base import FaultConfig, SimResponse, SimServer
from leadgen_dagster.assets.registry import acra_staging, companies, fetch_date
from leadgen_dagster.cli import main
from leadgen_dagster.definitions import defs
from leadgen_dagster.jobs import staging_upsert_job
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import load_registry, resources

DAY = date(2026, 3, 2)


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.instance_for_test() as inst:
        yield inst


def q(dsn: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_acra_staging_pulls_pages_quarantines_and_feeds_companies(clean_db, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    faults = FaultConfig(rate_limit_per_s=4, retry_after_s=0.2)
    with AcraSim(rows=1200, malformed_rate=0.05, faults=faults) as sim:
        monkeypatch.setenv("ACRA_API_URL", f"{sim.base_url}/api/action/datastore_search")
        monkeypatch.setenv("ACRA_RESOURCE_IDS", sim.resource_id)
        monkeypatch.setenv("ACRA_PAGE_SIZE", "100")
        monkeypatch.setenv("ACRA_FETCH", "datastore")  # paging, with its 429s, is what this test is about
        result = dg.materialize(
            [acra_staging, companies],
            resources=resources(clean_db.app_dsn),
            instance=instance,
        )
        assert result.success
        statuses = [r.status for r in sim.log]
        assert 429 in statuses  # the rate limit bit, and the client backed off and finished
    meta = result.asset_materializations_for_node("acra_staging")[0].metadata
    seen, staged, rejected = (meta[k].value for k in ("rows_seen", "rows_staged", "rows_rejected"))
    assert seen == 1200 and rejected > 0 and staged + rejected == 1200
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM staging_acra_rejects") == [(rejected,)]
    raw = q(clean_db.owner_dsn, "SELECT reason, raw_text FROM staging_acra_rejects LIMIT 1")[0]
    assert raw[0] and len(raw[1]) > 20  # the raw row is kept with its reason
    comp = result.asset_materializations_for_node("companies")[0].metadata
    assert comp["inserted"].value == q(clean_db.owner_dsn, "SELECT count(*) FROM companies")[0][0] > 0
    # one current snapshot, labelled with the day it was fetched (Singapore)
    assert q(clean_db.owner_dsn, "SELECT snapshot_date FROM registry_refreshes") == [(fetch_date(),)]
    assert comp["snapshot_date"].value == meta["snapshot_date"].value == fetch_date().isoformat()


def test_missing_resource_ids_is_a_clear_error(clean_db, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ACRA_RESOURCE_IDS", "")
    result = dg.materialize(
        [acra_staging],
        resources=resources(clean_db.app_dsn),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success


def _job_row(db: DbHandle, job_id: int) -> tuple:
    return q(
        db.owner_dsn, "SELECT status, processed, total, error, attempts FROM background_jobs WHERE job_id = %s", job_id
    )[0]


def test_background_job_runs_through_the_sensor_and_survives_a_crash(
    clean_db, instance, owner_conn, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("UPSERT_MAX_PER_JOB", "150")
    monkeypatch.setenv("STAGING_BATCH_SIZE", "40")
    add_tenant(owner_conn, "alpha")
    load_registry(clean_db.owner_dsn, rows=2000, day=DAY)
    owner_conn.execute("TRUNCATE companies CASCADE")  # staged, not yet in companies
    with psycopg.connect(clean_db.app_dsn) as conn, conn.transaction():
        conn.execute("SELECT set_config('request.tenant_id', 'alpha', true)")
        job_id = enqueue_upsert(conn, tenant_id="alpha", terms=["wholesale", "logistics"])
    sensor = defs.get_repository_def().get_sensor_def("background_jobs_sensor")
    with dg.build_sensor_context(instance=instance, resources=resources(clean_db.app_dsn)) as ctx:
        (request,) = sensor.evaluate_tick(ctx).run_requests
    assert request.tags["leadgen/tenant"] == "alpha"
    job_defs = dg.Definitions(jobs=[staging_upsert_job], resources=resources(clean_db.app_dsn))
    run = job_defs.get_job_def("staging_upsert_job").execute_in_process(
        run_config=request.run_config, instance=instance
    )
    assert run.success
    status, processed, total, error, attempts = _job_row(clean_db, job_id)
    assert (status, processed, total, error, attempts) == ("done", 150, 150, None, 1)  # capped at 150
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM companies") == [(150,)]
    # a job left running by a run that died is marked failed, then can be retried
    owner_conn.execute(
        "UPDATE background_jobs SET status = 'running', dagster_run_id = 'no-such-run' WHERE job_id = %s", (job_id,)
    )
    with dg.build_sensor_context(instance=instance, resources=resources(clean_db.app_dsn)) as ctx:
        sensor.evaluate_tick(ctx)
    status, *_, error, _ = _job_row(clean_db, job_id)
    assert status == "error" and "no-such-run" in error
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()
    out = runner.invoke(main, ["jobs", "retry", str(job_id), "--tenant", "alpha"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["jobs", "status", str(job_id), "--tenant", "alpha"])
    assert "queued" in out.output
    out = runner.invoke(main, ["jobs", "status", str(job_id)])  # the job's tenant is found
    assert out.exit_code == 0 and "tenant alpha" in out.output and "queued" in out.output, out.output
    with dg.build_sensor_context(instance=instance, resources=resources(clean_db.app_dsn)) as ctx:
        (again,) = sensor.evaluate_tick(ctx).run_requests
    assert again.run_key != request.run_key  # a fresh run key for the second attempt


def test_jobs_cli_enqueue_and_bad_input(clean_db, owner_conn, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    add_tenant(owner_conn, "alpha")
    runner = CliRunner()
    out = runner.invoke(main, ["jobs", "enqueue-upsert", "--tenant", "Alpha", "--terms", "manufacturing, logistics"])
    assert out.exit_code == 0 and "queued job" in out.output
    assert q(clean_db.owner_dsn, "SELECT params FROM background_jobs")[0][0] == {
        "terms": ["manufacturing", "logistics"]
    }
    out = runner.invoke(main, ["jobs", "enqueue-upsert", "--tenant", "alpha", "--terms", " , "])
    assert out.exit_code == 2 and "--terms must name" in out.output
    out = runner.invoke(main, ["jobs", "status", "999", "--tenant", "alpha"])
    assert out.exit_code == 2 and "no background job 999 for tenant alpha" in out.output
    out = runner.invoke(main, ["jobs", "status", "999"])
    assert out.exit_code == 2 and "no background job 999" in out.output


def test_acra_cli_synth_and_load(clean_db, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()
    csv_path = tmp_path / "acra.csv"
    out = runner.invoke(main, ["acra", "synth", "--rows", "800", "--malformed-rate", "0.05", "-o", str(csv_path)])
    assert out.exit_code == 0 and csv_path.stat().st_size > 10_000
    out = runner.invoke(main, ["acra", "load", str(csv_path), "--date", "2026-03-02"])
    assert out.exit_code == 0, out.output
    staged = q(clean_db.owner_dsn, "SELECT count(*) FROM staging_acra_companies")[0][0]
    rejected = q(clean_db.owner_dsn, "SELECT count(*) FROM staging_acra_rejects")[0][0]
    assert staged + rejected == 800 and rejected > 0
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM companies")[0][0] == staged
    out = runner.invoke(main, ["acra", "load", str(tmp_path / "missing.csv")])
    assert out.exit_code == 2


class Webhook(SimServer):
    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", "/hook", lambda req: SimResponse(200, {"ok": True}))


@dg.op
def explode() -> None:
    raise RuntimeError("the vendor fell into the sea")


@dg.job(tags={"leadgen/tenant": "alpha"})
def doomed_job() -> None:
    explode()


@dg.asset
def exploding_asset() -> None:
    raise RuntimeError("the page was on fire")


def failure_context(instance: dg.DagsterInstance, result: Any) -> dg.RunFailureSensorContext:
    """What the daemon hands the failure sensor for RESULT's failed run (resources read the env now)."""
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={k: v for k, v in resources("x").items() if k in ("settings", "alerts")},
    ).for_run_failure()


def test_run_failure_sensor_posts_slack_json_and_a_streak_alert(instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from leadgen_dagster.sensors import build_failure_sensor

    monkeypatch.setenv("ALERT_CONSECUTIVE_FAILURES", "2")
    sensor = build_failure_sensor([doomed_job])
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        run_ids = []
        for attempt in range(2):
            result = doomed_job.execute_in_process(instance=instance, raise_on_error=False)
            run_ids.append(result.dagster_run.run_id)
            sensor(failure_context(instance, result))
            posts = [r.json() for r in hook.requests_to("/hook")]
            assert len(posts) == attempt + (1 if attempt == 0 else 2)
        first, _, streak = posts
        text = json.dumps(first)
        assert "alpha" in text and "explode" in text and "fell into the sea" in text
        assert f"/runs/{run_ids[0]}|Open in Dagster" in text and "RuntimeError" in first["text"]
        assert "2 consecutive failures" in streak["text"]


def test_failure_sensor_skips_attempts_that_will_retry_and_counts_nights_not_attempts(instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A night retried once is one failure: no alert for the attempt Dagster will retry, and the
    streak counts root runs (a night and its re-executions), not every failed attempt."""
    from leadgen_dagster.sensors import build_failure_sensor

    monkeypatch.setenv("ALERT_CONSECUTIVE_FAILURES", "2")
    sensor = build_failure_sensor([doomed_job])
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        first = doomed_job.execute_in_process(
            instance=instance, raise_on_error=False, tags={"dagster/will_retry": "true"}
        )
        sensor(failure_context(instance, first))
        assert hook.requests_to("/hook") == []  # the retry's outcome is what gets reported
        retry = dg.execute_job(
            dg.reconstructable(doomed_job),
            instance=instance,
            reexecution_options=dg.ReexecutionOptions.from_failure(first.dagster_run.run_id, instance),
            raise_on_error=False,
        )
        assert retry.dagster_run.root_run_id == first.dagster_run.run_id
        sensor(failure_context(instance, retry))
        texts = [r.json()["text"] for r in hook.requests_to("/hook")]
        assert len(texts) == 1 and "consecutive" not in texts[0]  # one night, one failure
        second_night = doomed_job.execute_in_process(instance=instance, raise_on_error=False)
        sensor(failure_context(instance, second_night))
        texts = [r.json()["text"] for r in hook.requests_to("/hook")]
        assert len(texts) == 3 and "2 consecutive failures" in texts[2]


def test_alert_webhook_is_wired_as_an_env_var_never_a_value(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from leadgen_dagster.resources import AlertsResource, alerts_resource

    monkeypatch.delenv("LEADGEN_ALERT_WEBHOOK_URL", raising=False)
    assert alerts_resource().url() is None  # unset: alerts are logged, not posted
    monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", "https://hooks.example/T000/B000/s3cret")
    wired = alerts_resource()
    assert isinstance(wired.webhook_url, dg.EnvVar) and wired.webhook_url.env_var_name == "LEADGEN_ALERT_WEBHOOK_URL"
    assert "s3cret" not in repr(wired)
    assert AlertsResource(webhook_url="").url() is None


def test_failure_alert_names_the_tenant_of_a_run_launched_from_the_ui(instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from leadgen_dagster.partitions import tenant_date_partitions
    from leadgen_dagster.sensors import build_failure_sensor

    # The UI and backfills tag a run with its partition's dimensions, not with leadgen/tenant.
    tags = dict(tenant_date_partitions.get_tags_for_partition_key("2026-11-20|beta"))
    assert tags["dagster/partition/tenant"] == "beta"
    sensor = build_failure_sensor()
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        result = dg.materialize([exploding_asset], instance=instance, tags=tags, raise_on_error=False)
        sensor(failure_context(instance, result))
        (post,) = [r.json() for r in hook.requests_to("/hook")]
    assert "beta" in json.dumps(post) and "exploding_asset" in json.dumps(post)


def test_leadgen_night_runs_one_partition_headless(clean_db, owner_conn, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.setenv("LEADGEN_APP_DATABASE_URL", clean_db.app_dsn)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "7")
    add_tenant(owner_conn, "alpha", rules={"industries": ["wholesale"]})
    load_registry(clean_db.owner_dsn, rows=1500, day=DAY)
    for var in ("TAVILY", "LUSHA", "ZEROBOUNCE", "OPENAI"):
        monkeypatch.delenv(f"{var}_API_KEY", raising=False)
        monkeypatch.delenv(f"{var}_BASE_URL", raising=False)
    monkeypatch.delenv("LEADGEN_SANDBOX_WEB_PORT", raising=False)
    monkeypatch.delenv("ODOO_SANDBOX_URL", raising=False)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # the command exports the sandbox's variables
    from leadgen_core.sandbox.odoo import OdooSim

    with OdooSim(db="sandbox", users={"admin": "odoo-test-key"}) as odoo:
        # the tenant's CRM is a running Odoo; the vendors are the sandbox the command starts itself
        owner_conn.execute("UPDATE odoo_connections SET base_url = %s, secret_ref = 'env:ODOO_NIGHT_KEY'",
                           (odoo.base_url,))  # fmt: skip
        os.environ["ODOO_NIGHT_KEY"] = "odoo-test-key"
        # a dry run first: a forecast, and no vendor spend, Odoo write or stage timing at all
        out = CliRunner().invoke(main, ["night", "--tenant", "alpha", "--date", DAY.isoformat(), "--dry-run"])
        assert out.exit_code == 0, out.output
        assert "(dry run)" in out.output and "estimated duration" in out.output, out.output
        assert "no real night yet: units are the stages' upper bounds" in out.output, out.output
        # every check is green: the SLA check does not judge a night that was not timed
        assert "check night_within_sla" in out.output and "FAILED" not in out.output, out.output
        assert odoo.write_count == 0
        assert q(clean_db.owner_dsn, "SELECT count(*) FROM vendor_usage") == [(0,)]
        assert q(clean_db.owner_dsn, "SELECT count(*) FROM run_stage_stats") == [(0,)]
        assert q(clean_db.owner_dsn, "SELECT count(*) FROM odoo_sync_log") == [(0,)]
        out = CliRunner().invoke(main, ["night", "--tenant", "Alpha", "--date", DAY.isoformat()])
        assert out.exit_code == 0, out.output
        assert "running against the sandbox simulators" in out.output and "succeeded" in out.output
        for stage in ("icp_candidates", "daily_targets", "crawled_sites", "web_extractions", "contacts",
                      "email_verifications", "lead_scores", "odoo_sync"):  # fmt: skip
            assert stage in out.output, (stage, out.output)
        assert "check targets_not_empty" in out.output and "check night_within_sla" in out.output
        assert "FAILED" not in out.output, out.output
        # readable: a table row per stage, no Python dict reprs, no DEBUG event lines without -v
        assert "stage" in out.output and "degraded" in out.output and "duration" in out.output
        assert "{" not in out.output and " - DEBUG - " not in out.output, out.output
        assert odoo.counts()["res.partner"] >= 7
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM daily_targets WHERE tenant_id = 'alpha'") == [(7,)]
    assert q(clean_db.owner_dsn, "SELECT count(*) FROM company_stage_status WHERE status = 'failed'") == [(0,)]
    out = CliRunner().invoke(main, ["night", "--tenant", "nobody", "--date", DAY.isoformat()])
    assert out.exit_code == 2 and "no tenant with id or name 'nobody'" in out.output


def test_forecast_takes_the_larger_of_concurrency_and_rate_bounds() -> None:
    from leadgen_core.spend.forecast import night_forecast, vendor_seconds

    assert vendor_seconds(0, latency_s=1.0, workers=8, rate_per_s=1.0) == 0.0
    assert vendor_seconds(80, latency_s=2.5, workers=8, rate_per_s=6.0) == 25.0  # concurrency-bound
    assert vendor_seconds(100, latency_s=0.4, workers=8, rate_per_s=0.5) == 200.0  # rate-bound
    fc = night_forecast([({"tavily": 3}, {"tavily": 3}), ({"tavily": 1, "openai": 2}, {"openai": 900})],
                        pages=60, workers=6, rates={"tavily": 1.0, "openai": 6.0})  # fmt: skip
    assert fc.calls == {"tavily": 4, "openai": 2, "web": 60} and fc.units == {"tavily": 3, "openai": 900}
    assert fc.seconds == 4.0 + 2 * 2.5 / 6 + 60 * 0.15 / 6
    assert fc.lines()[-1] == f"  estimated duration: {fc.seconds / 60:.1f} min (vendor limits)"


def test_forecast_duration_follows_the_vendor_limits_tokens_included() -> None:
    """A night's OpenAI tokens through a tier's TPM: 4M reserved tokens take 20 minutes on tier 1
    (200,000 a minute) whatever the request rate, 2 minutes on tier 2."""
    from leadgen_core.spend.forecast import night_forecast
    from leadgen_core.vendors.openai_tiers import tier_limits

    stages = [({"openai": 1_000, "zerobounce": 3_800}, {"openai": 4_000_000, "zerobounce": 3_800})]
    by_tier = {}
    for tier in (1, 2):
        limits = tier_limits(tier)
        by_tier[tier] = night_forecast(stages, pages=0, workers=32, rates={"openai": limits.rpm / 60,
                                       "zerobounce": 8_000.0}, unit_rates={"openai": limits.tpm / 60},
                                       vendor_workers={"zerobounce": 32}, targets=1_000)  # fmt: skip
    assert by_tier[1].seconds_by_vendor["openai"] == pytest.approx(1_200.0)
    assert by_tier[1].bound_by["openai"] == "units/limit"
    assert by_tier[2].seconds_by_vendor["openai"] == pytest.approx(120.0)
    assert by_tier[2].seconds_by_vendor["zerobounce"] == pytest.approx(
        3_800 * 3.4 / 32
    )  # in flight, not the batch limit
    assert by_tier[2].lines()[0] == "  targets: 1000"


def test_leadgen_night_never_overlaps_a_night_of_the_same_tenant(
    clean_db, owner_conn, monkeypatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A night queued or running in the shared Dagster instance, or another `leadgen night` holding
    the tenant's lock, makes the command refuse at once. With DAGSTER_HOME set and no
    LEADGEN_DAGSTER_PG_URL, the command finds Dagster's storage itself (it used to crash)."""
    from click.testing import CliRunner

    from leadgen_core.db.dsn import sqlalchemy_url
    from leadgen_core.settings import Settings
    from leadgen_dagster.cli.main import main
    from leadgen_dagster.instance import write_dagster_home
    from leadgen_dagster.night_guard import lock_key

    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.setenv("LEADGEN_APP_DATABASE_URL", clean_db.app_dsn)
    add_tenant(owner_conn, "alpha")
    add_tenant(owner_conn, "beta")
    home = write_dagster_home(Settings(), tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("LEADGEN_DAGSTER_PG_URL", sqlalchemy_url(clean_db.owner_dsn, search_path="dagster"))
    with dg.DagsterInstance.get() as shared:  # the UI's instance: a night of alpha is queued there
        queued = shared.create_run_for_job(doomed_job, tags={"dagster/partition/tenant": "alpha"})
    monkeypatch.delenv("LEADGEN_DAGSTER_PG_URL")
    out = CliRunner().invoke(main, ["night", "--tenant", "alpha", "--date", "2026-11-20"])
    assert out.exit_code == 2, out.output
    assert f"already has a night queued or running in Dagster (run {queued.run_id})" in out.output
    assert "Traceback" not in out.output

    # another `leadgen night` of beta holds beta's lock
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("beta"),))
        out = CliRunner().invoke(main, ["night", "--tenant", "beta", "--date", "2026-11-20"])
    assert out.exit_code == 2 and "already has a `leadgen night` running" in out.output, out.output
