"""Sensors: tenant partitions, background jobs, run-failure alerts and the SLA deadline."""

import json
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg

from leadgen_core.alerts import Alert, post_alert
from leadgen_core.clock import SGT
from leadgen_core.cron import previous_tick
from leadgen_core.night.stagestats import night_stats
from leadgen_core.registry.jobs import mark_failed, queued_jobs, running_jobs
from leadgen_core.settings import Settings
from leadgen_core.tenants import active_tenant_ids, directory
from leadgen_core.tenants import created_at as tenant_created_at
from leadgen_dagster.jobs import registry_refresh_job, staging_upsert_job
from leadgen_dagster.partitions import tenant_partitions
from leadgen_dagster.resources import AlertsResource, PostgresResource, SettingsResource
from leadgen_dagster.tags import NIGHT_DATE_TAG, TENANT_TAG, root_run_id, run_tenant, will_retry

DEAD_RUN_STATUSES = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
# Attempts one night may have (the run, its retry, a few re-executions), to find N nights in the run records.
RUN_RECORDS_PER_NIGHT = 4


def _active(postgres: PostgresResource, s: Settings) -> list[str]:
    with postgres.shared(operation="tenant directory") as conn:
        return active_tenant_ids(directory(conn), include=s.tenant_include, exclude=s.tenant_exclude)


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a `tenants` partition for every active tenant; removes partitions that name no tenant at all. "
    "A deactivated tenant keeps its partition (its history stays visible); launches skip it.",
)
def tenant_partitions_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.SensorResult:
    with postgres.shared(operation="tenant directory") as conn:
        tenants = directory(conn)
    s = settings.get()
    wanted = set(active_tenant_ids(tenants, include=s.tenant_include, exclude=s.tenant_exclude))
    known = {t.tenant_id for t in tenants}
    existing = set(context.instance.get_dynamic_partitions(tenant_partitions.name or "tenants"))
    add, remove = sorted(wanted - existing), sorted(existing - known)
    requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(tenant_partitions.build_add_request(add))
    if remove:
        requests.append(tenant_partitions.build_delete_request(remove))
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(existing)} tenant partitions already in sync")
    if add:
        context.log.info(f"tenant partitions: adding {', '.join(add)}")
    if remove:
        context.log.info(f"tenant partitions: removing {', '.join(remove)}: no such tenant (added by hand?)")
    return dg.SensorResult(dynamic_partitions_requests=requests)


@dg.sensor(
    job=staging_upsert_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches queued background upserts; marks jobs whose run died as failed (retry with the CLI).",
)
def background_jobs_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, settings: SettingsResource
) -> list[dg.RunRequest] | dg.SkipReason:
    requests: list[dg.RunRequest] = []
    with postgres.shared(operation="tenant directory") as conn:
        tenants = [t.tenant_id for t in directory(conn)]
    for tenant in tenants:
        with postgres.tenant(tenant, operation="background jobs sensor") as conn:
            for job_id, run_id in running_jobs(conn):
                run = context.instance.get_run_by_id(run_id) if run_id else None
                if run is None or run.status in DEAD_RUN_STATUSES:
                    state = run.status.value if run else "missing"
                    mark_failed(conn, job_id, f"run {run_id} ended as {state} while the job was running")
            for job_id, attempts in queued_jobs(conn):
                requests.append(
                    dg.RunRequest(
                        run_key=f"upsert-job-{job_id}-attempt-{attempts + 1}",
                        run_config={"ops": {"staging_upsert": {"config": {"job_id": job_id, "tenant_id": tenant}}}},
                        tags={TENANT_TAG: tenant, "leadgen/background_job": str(job_id)},
                    )
                )
    return requests or dg.SkipReason("no queued background jobs")


def _failed_step(context: dg.RunFailureSensorContext) -> tuple[str | None, str]:
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        err = data.error if data else None
        # Dagster wraps the user's exception; the root cause is what an operator needs to read.
        while err is not None and err.cause is not None:
            err = err.cause
        message = f"{err.cls_name}: {err.message.strip()}" if err else (event.message or "")
        return event.step_key, message
    return None, (context.failure_event.message or "run failed")


def consecutive_failures(instance: dg.DagsterInstance, run: dg.DagsterRun, *, tag: tuple[str, str], n: int) -> bool:
    """True when the last N nights of RUN's job and tenant each ended in failure.

    A night is a chain of attempts sharing a root run (retries, re-executions); only its latest
    attempt counts, so one night retried once is one failure, not two.
    """
    records = instance.get_run_records(
        dg.RunsFilter(job_name=run.job_name, tags={tag[0]: tag[1]}), limit=n * RUN_RECORDS_PER_NIGHT
    )
    latest_per_night: dict[str, dg.DagsterRunStatus] = {}
    for record in records:  # newest first
        latest_per_night.setdefault(root_run_id(record.dagster_run), record.dagster_run.status)
    nights = list(latest_per_night.values())[:n]
    return len(nights) == n and all(status == dg.DagsterRunStatus.FAILURE for status in nights)


def build_failure_sensor(monitored: list[Any] | None = None) -> dg.SensorDefinition:
    """The alert sensor for MONITORED jobs; None: every job of this code location, including the
    asset job behind materialisations and backfills launched from the UI."""

    @dg.run_failure_sensor(
        name="run_failure_alert_sensor",
        monitored_jobs=monitored,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts a Slack-compatible alert for each failed run, and another after N consecutive failures.",
    )
    def run_failure_alert_sensor(
        context: dg.RunFailureSensorContext, settings: SettingsResource, alerts: AlertsResource
    ) -> None:
        s = settings.get()
        run = context.dagster_run
        if will_retry(run.tags):  # not final yet: the retry's own outcome is what gets reported
            context.log.info(f"run {run.run_id} will be retried; no alert for this attempt")
            return
        if run.tags.get(NIGHT_DATE_TAG):  # the night's registry run: night_launcher_sensor sends its one alert
            context.log.info(f"registry run {run.run_id} opens a night; night_launcher_sensor reports it")
            return
        url = alerts.url()
        if url is None:
            context.log.info("LEADGEN_ALERT_WEBHOOK_URL not set; failure not posted")
            return
        owner = run_tenant(run.tags)
        tenant = owner[1] if owner else None
        step, error = _failed_step(context)
        link = f"{s.ui_base_url.rstrip('/')}/runs/{run.run_id}"
        partition = run.tags.get("dagster/partition")
        reason = post_alert(url, Alert(f"leadgen run failed: {run.job_name}", tenant, partition, step, error, link))
        if reason:
            context.log.warning(f"alert not delivered: {reason}")
        if owner and consecutive_failures(context.instance, run, tag=owner, n=s.alert_consecutive_failures):
            n = s.alert_consecutive_failures
            post_alert(
                url,
                Alert(f"leadgen: {n} consecutive failures for tenant {tenant}", tenant, partition, step, error, link),
            )

    return run_failure_alert_sensor


def last_due_night(now: datetime, sla_minutes: int, cron: str = "0 1 * * *") -> tuple[date, datetime]:
    """The most recent night whose deadline (its SCHED_START_CRON tick + SLA) has passed, and that
    deadline. The night's date is the Singapore date of its tick, as the nightly schedule names it."""
    tick = previous_tick(cron, at=now.astimezone(SGT) - timedelta(minutes=sla_minutes))
    return tick.date(), tick + timedelta(minutes=sla_minutes)


def overdue_tenants(
    postgres: PostgresResource, *, tenants: list[str], day: date, terminal_stage: str, deadline: datetime
) -> list[str]:
    """Tenants whose night for DAY has not finished its terminal stage: hung, failed or never started.
    A tenant created after its DEADLINE was never due that night (a fresh `make dev`, a new customer)."""
    overdue = []
    for tenant in tenants:
        with postgres.tenant(tenant, operation="deadline sensor") as conn:
            created = tenant_created_at(conn, tenant)
            stats = {s.stage: s for s in night_stats(conn, tenant_id=tenant, run_date=day)}
        if created is not None and created > deadline:
            continue
        final = stats.get(terminal_stage)
        if final is None or final.finished_at is None:
            overdue.append(tenant)
    return overdue


def build_deadline_sensor(terminal_stage: str) -> dg.SensorDefinition:
    @dg.sensor(
        name="sla_deadline_sensor",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts for every tenant whose night has not completed by SCHED_START_CRON's tick + SLA_MINUTES, "
        "whether its run "
        "hangs, failed or never started.",
    )
    def sla_deadline_sensor(
        context: dg.SensorEvaluationContext,
        postgres: PostgresResource,
        settings: SettingsResource,
        alerts: AlertsResource,
    ) -> dg.SkipReason:
        s = settings.get()
        day, deadline = last_due_night(datetime.now(SGT), s.sla_minutes, s.sched_start_cron)
        alerted: dict[str, list[str]] = json.loads(context.cursor) if context.cursor else {}
        already = set(alerted.get(day.isoformat(), []))
        late = [
            t
            for t in overdue_tenants(
                postgres, tenants=_active(postgres, s), day=day, terminal_stage=terminal_stage, deadline=deadline
            )
            if t not in already
        ]
        for tenant in late:
            context.log.warning(f"SLA deadline missed: tenant {tenant}, night {day}")
            url = alerts.url()
            if url is not None:
                post_alert(
                    url,
                    Alert(
                        f"leadgen SLA deadline missed ({deadline:%H:%M} SGT)",
                        tenant,
                        f"{day}|{tenant}",
                        terminal_stage,
                        f"night {day} not complete by {deadline.isoformat()}",
                        f"{s.ui_base_url.rstrip('/')}/runs?q[]=tag%3A{TENANT_TAG}%3D{tenant}",
                    ),
                )
        alerted = {day.isoformat(): sorted(already | set(late))}  # keep only the current night
        context.update_cursor(json.dumps(alerted))
        return dg.SkipReason(f"night {day}: {len(late)} new overdue tenant(s)")

    return sla_deadline_sensor


__all__ = [
    "background_jobs_sensor",
    "build_deadline_sensor",
    "build_failure_sensor",
    "registry_refresh_job",
    "tenant_partitions_sensor",
]
