"""registry → tenant nights: the schedule opens a night with the registry, a sensor starts the nights.

Real: Postgres (tenants, registry snapshots, targets; tenant rows as the application role),
Dagster executing `registry_refresh_job` and tenant stages on a test instance, the
`night_launcher_sensor` and the failure alert sensor evaluated against that instance's real run
records, and a loopback webhook receiving alerts. Simulated: a registry that fails (no dataset
configured, a configuration error that is not retried) or that hangs (a run created, never started).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest

from leadgen_core.sandbox.base import SimResponse, SimServer
from leadgen_dagster.assets.registry import acra_staging, companies
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from leadgen_dagster.jobs import registry_refresh_job
from leadgen_dagster.night_launcher import night_launcher_sensor
from leadgen_dagster.sensors import build_failure_sensor
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry, resources

SGT = ZoneInfo("Asia/Singapore")
TECH = {"industries": ["software", "information technology"], "incorporation_year": {"min": 1990, "max": 2025}}


class Webhook(SimServer):
    name = "webhook"

    def __init__(self) -> None:
        super().__init__()
        self.route("POST", "/hook", lambda req: SimResponse(200, {"ok": True}))


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.instance_for_test() as inst:
        yield inst


def tonight() -> tuple[str, str]:
    """Tonight's date and its 01:00 tick (SGT), as the schedule tags the registry run."""
    start = datetime.now(SGT).replace(hour=1, minute=0, second=0, microsecond=0)
    return start.date().isoformat(), start.isoformat()


def registry_job(db: DbHandle) -> dg.JobDefinition:
    return dg.Definitions(
        assets=[acra_staging, companies], jobs=[registry_refresh_job], resources=resources(db.app_dsn)
    ).resolve_job_def("registry_refresh_job")


def run_registry(db: DbHandle, instance: dg.DagsterInstance, **tags: str) -> dg.ExecuteInProcessResult:
    return registry_job(db).execute_in_process(instance=instance, tags=tags, raise_on_error=False)


def evaluate_launcher(db: DbHandle, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    # Invoked directly: the daemon would also resolve each request's partition against the instance.
    with dg.build_sensor_context(instance=instance, resources=resources(db.app_dsn), cursor=cursor) as ctx:
        result = night_launcher_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.fixture
def two_tenants(clean_db: DbHandle, instance: dg.DagsterInstance) -> DbHandle:
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules=TECH)
        add_tenant(conn, "beta", rules=TECH)
    add_partitions(instance, "alpha", "beta")
    return clean_db


def test_a_failed_registry_runs_the_nights_on_yesterdays_snapshot_with_one_alert(
    two_tenants, instance, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    day, start = tonight()
    yesterday = datetime.fromisoformat(start).date() - timedelta(days=1)
    load_registry(two_tenants.owner_dsn, rows=1500, day=yesterday)  # the last good snapshot
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        monkeypatch.setenv("ACRA_RESOURCE_IDS", "")  # tonight's registry fails: nothing to download
        tags = {"leadgen/night_date": day, "leadgen/night_start": start}
        failed = run_registry(two_tenants, instance, **tags)
        assert not failed.success
        result = evaluate_launcher(two_tenants, instance, None)
        requests = sorted(result.run_requests or [], key=lambda r: r.partition_key)
        assert [r.partition_key for r in requests] == [f"{day}|alpha", f"{day}|beta"]
        assert all(r.tags["leadgen/registry_stale"] == "true" for r in requests)
        assert all(r.tags["leadgen/night_start"] == start for r in requests)  # SLA clock: 01:00
        # the failure alert sensor leaves the night's registry run to the launcher: one alert in all
        failure = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
        build_failure_sensor()(
            dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert_sensor",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=failed.dagster_run,
                resources={k: v for k, v in resources("x").items() if k in ("settings", "alerts")},
            ).for_run_failure()
        )
        again = evaluate_launcher(two_tenants, instance, result.cursor)
        assert not again.run_requests
        posts = [r.json() for r in hook.requests_to("/hook")]
        assert len(posts) == 1, posts
        text = json.dumps(posts[0])
        assert "registry_stale" in text and yesterday.isoformat() in text and failed.run_id in text
    # a night still runs, on yesterday's snapshot, flagged stale
    night = dg.materialize(
        [icp_candidates, daily_targets],
        partition_key=requests[0].partition_key,
        tags=requests[0].tags,
        resources=resources(two_tenants.app_dsn),
        instance=instance,
    )
    assert night.success
    meta = night.asset_materializations_for_node("icp_candidates")[0].metadata
    assert meta["registry_stale"].value is True and meta["registry_snapshot"].value == yesterday.isoformat()
    assert meta["candidates"].value > 0
    assert night.asset_materializations_for_node("daily_targets")[0].metadata["targets"].value > 0


def test_a_successful_registry_starts_fresh_nights_once(two_tenants, instance) -> None:  # type: ignore[no-untyped-def]
    day, start = tonight()
    load_registry(two_tenants.owner_dsn, rows=300, day=datetime.fromisoformat(start).date())
    # today's snapshot is in: the registry run reuses it instead of downloading again
    done = run_registry(two_tenants, instance, **{"leadgen/night_date": day, "leadgen/night_start": start})
    assert done.success
    assert done.asset_materializations_for_node("acra_staging")[0].metadata["reused"].value is True
    result = evaluate_launcher(two_tenants, instance, None)
    assert sorted(r.tags["leadgen/tenant"] for r in result.run_requests or []) == ["alpha", "beta"]
    assert all(r.tags["leadgen/registry_stale"] == "false" for r in result.run_requests or [])
    assert len({r.run_key for r in result.run_requests or []}) == 2
    # the two nights launched together start SCHED_TENANT_STAGGER_S (60) apart, in tenant order
    ordered = sorted(result.run_requests or [], key=lambda r: r.tags["leadgen/tenant"])
    assert [r.tags["leadgen/start_after_s"] for r in ordered] == ["0", "60"]
    assert not evaluate_launcher(two_tenants, instance, result.cursor).run_requests
    night = dg.materialize(
        [icp_candidates],
        partition_key=f"{day}|alpha",
        tags=ordered[0].tags,  # alpha's: it starts at once
        resources=resources(two_tenants.app_dsn),
        instance=instance,
    )
    assert night.asset_materializations_for_node("icp_candidates")[0].metadata["registry_stale"].value is False


@pytest.mark.parametrize(("deadline_minutes", "launched"), [(30, False), (0, True)])
def test_a_hung_registry_holds_the_nights_until_its_deadline(
    two_tenants: DbHandle, instance: dg.DagsterInstance, monkeypatch: Any, deadline_minutes: int, launched: bool
) -> None:
    day, _ = tonight()
    monkeypatch.setenv("REGISTRY_DEADLINE_MINUTES", str(deadline_minutes))
    load_registry(two_tenants.owner_dsn, rows=300, day=datetime.now(SGT).date() - timedelta(days=1))
    # a registry run created just now that never finishes: its deadline counts from its creation
    instance.create_run_for_job(
        registry_job(two_tenants),
        tags={"leadgen/night_date": day, "leadgen/night_start": datetime.now(SGT).isoformat()},
    )
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        result = evaluate_launcher(two_tenants, instance, None)
        assert bool(result.run_requests) is launched  # no run sits waiting: none exists until then
        assert len(hook.requests_to("/hook")) == (1 if launched else 0)
    if launched:
        assert all(r.tags["leadgen/registry_stale"] == "true" for r in result.run_requests or [])
