"""The morning summary sensor: one Slack-compatible post per successful tenant night.

Runs only when LEADGEN_NOTIFY_SUCCESS is true. A night is a run that materialised the terminal
stage for one tenant's `date|tenant` partition; a re-execution from failure is read together with
the runs before it, so the summary covers the whole night. Failed nights keep their failure alert.
"""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import dagster as dg

from leadgen_core.clock import today_sg
from leadgen_core.errors import PartitionKeyError
from leadgen_core.night.stagestats import night_stats, night_wall_seconds
from leadgen_core.spend.budget import caps_for, spend
from leadgen_core.summary import BUCKETS, NightSummary, post_summary
from leadgen_dagster.partitions import parse_tenant_date
from leadgen_dagster.resources import AlertsResource, PostgresResource, SettingsResource
from leadgen_dagster.tags import NIGHT_START_TAG, is_dry_run, root_run_id

PARTITION_TAG = "dagster/partition"


def _chain(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Iterator[dg.DagsterRun]:
    """RUN, then the runs it re-executes, newest first."""
    current: dg.DagsterRun | None = run
    while current is not None:
        yield current
        current = instance.get_run_by_id(current.parent_run_id) if current.parent_run_id else None


def materialized(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """The metadata of each stage (by asset name) RUN_ID materialised, its latest materialisation."""
    latest: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.asset_materialization
        if mat is not None:
            latest[mat.asset_key.path[-1]] = {k: v.value for k, v in mat.metadata.items()}
    return latest


def stage_metadata(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, dict[str, Any]]:
    """The latest metadata of each stage across RUN's chain of re-executions."""
    stages: dict[str, dict[str, Any]] = {}
    for attempt in _chain(instance, run):
        for name, meta in materialized(instance, attempt.run_id).items():
            stages.setdefault(name, meta)
    return stages


def _prefixed(meta: dict[str, Any], prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: int(v) for k, v in meta.items() if k.startswith(prefix) and isinstance(v, int)}


def build_summary_sensor(terminal_stage: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name="night_summary_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="With LEADGEN_NOTIFY_SUCCESS=true, posts one morning summary per successful tenant night "
        "(targets, buckets, Odoo records, spend against caps, duration against the SLA, a link).",
    )
    def night_summary_sensor(
        context: dg.RunStatusSensorContext,
        postgres: PostgresResource,
        settings: SettingsResource,
        alerts: AlertsResource,
    ) -> None:
        s = settings.get()
        run = context.dagster_run
        url = alerts.url()
        if not s.notify_success or url is None or is_dry_run(run.tags):
            return
        try:
            tenant, day = parse_tenant_date(run.tags.get(PARTITION_TAG, ""))
        except PartitionKeyError:
            return  # not a tenant night (the registry, a background job)
        if terminal_stage not in materialized(context.instance, run.run_id):
            return  # the night did not finish in this run (a UI materialisation of one stage)
        stages = stage_metadata(context.instance, run)
        units: dict[str, int] = {}
        for meta in stages.values():
            for vendor, n in _prefixed(meta, "units_").items():
                units[vendor] = units.get(vendor, 0) + n
        with postgres.tenant(tenant, operation="night summary") as conn:
            ledger = spend(conn, tenant_id=tenant, day=today_sg(), caps=caps_for(
                conn, tenant_id=tenant, defaults=s.vendor_caps()))  # fmt: skip
            stats = night_stats(conn, tenant_id=tenant, run_date=day, root_run_id=root_run_id(run))
        start = run.tags.get(NIGHT_START_TAG)
        summary = NightSummary(
            tenant=tenant,
            day=day,
            targets=int(stages.get("daily_targets", {}).get("targets", 0)),
            buckets={b: int(stages.get("lead_scores", {}).get(f"bucket_{b}", 0)) for b in BUCKETS},
            synced=_prefixed(stages.get(terminal_stage, {}), "synced_"),
            units=units,
            spend=ledger,
            duration_s=night_wall_seconds(stats, clock_start=datetime.fromisoformat(start) if start else None),
            sla_minutes=s.sla_minutes,
            link=f"{s.ui_base_url.rstrip('/')}/runs/{run.run_id}",
        )
        reason = post_summary(url, summary)
        if reason:
            context.log.warning(f"night summary not delivered: {reason}")
        else:
            context.log.info(f"night summary posted for {tenant} {day}")

    return night_summary_sensor
