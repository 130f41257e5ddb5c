"""The nightly schedule: at SCHED_START_CRON (01:00 Asia/Singapore) it opens the night.

The tick launches one `registry_refresh_job` run, tagged with the night's date and its 01:00
start. It launches no tenant run itself: `night_launcher_sensor` starts every tenant's night once
that registry run is over (on the fresh snapshot when it succeeded, on the last good one when it
failed or ran past REGISTRY_DEADLINE_MINUTES), so no run ever waits for the registry while
holding a slot. Missed ticks are caught up by the daemon (dagster.yaml), and each caught-up tick
opens its own night the same way.
Tenants launched together start SCHED_TENANT_STAGGER_S apart (tag `leadgen/start_after_s`,
leadgen_core.night.stagger), so they do not move through the shared vendor buckets in step.
"""

from datetime import date, datetime

import dagster as dg

from leadgen_core.clock import SGT
from leadgen_core.night.stagger import start_offsets
from leadgen_core.settings import TIMEZONE, Settings
from leadgen_core.tenants import active_tenant_ids, directory
from leadgen_dagster.jobs import registry_refresh_job
from leadgen_dagster.partitions import TENANTS_PARTITION, tenant_date_key
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.tags import (
    NIGHT_DATE_TAG,
    NIGHT_START_TAG,
    REGISTRY_STALE_TAG,
    SCHEDULED_TAG,
    START_AFTER_TAG,
    TENANT_TAG,
)

NIGHT_PRIORITY = "5"
REGISTRY_PRIORITY = "10"


def night_start(context: dg.ScheduleEvaluationContext) -> datetime:
    assert context.scheduled_execution_time is not None
    return context.scheduled_execution_time.astimezone(SGT)


def night_date(context: dg.ScheduleEvaluationContext) -> date:
    return night_start(context).date()


def night_run_requests(
    *,
    instance: dg.DagsterInstance,
    postgres: PostgresResource,
    settings: Settings,
    day: date,
    started: str,
    stale: bool,
) -> list[dg.RunRequest]:
    """One tenant_night_job run per active tenant that has a partition, for DAY."""
    with postgres.shared(operation="night launch") as conn:
        wanted = active_tenant_ids(directory(conn), include=settings.tenant_include, exclude=settings.tenant_exclude)
    known = set(instance.get_dynamic_partitions(TENANTS_PARTITION))
    tenants = [t for t in wanted if t in known]
    offsets = start_offsets(tenants, stagger_s=settings.sched_tenant_stagger_s,
                            concurrency=settings.sched_tenant_concurrency, sla_s=settings.sla_minutes * 60)  # fmt: skip
    return [
        dg.RunRequest(
            run_key=f"night-{day.isoformat()}-{tenant}",
            partition_key=tenant_date_key(tenant, day),
            tags={
                TENANT_TAG: tenant,
                SCHEDULED_TAG: "true",
                NIGHT_START_TAG: started,
                REGISTRY_STALE_TAG: "true" if stale else "false",
                "dagster/priority": NIGHT_PRIORITY,
                START_AFTER_TAG: f"{offsets[tenant]:g}",
            },
        )
        for tenant in tenants
    ]


def build_nightly_schedule(cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="nightly_schedule",
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        job=registry_refresh_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="01:00 Asia/Singapore: refresh the registry for the night; night_launcher_sensor then starts "
        "one tenant_night_job run per active tenant.",
    )
    def nightly_schedule(
        context: dg.ScheduleEvaluationContext, settings: SettingsResource
    ) -> dg.RunRequest | dg.SkipReason:
        if not settings.get().sched_enabled:
            return dg.SkipReason("SCHED_ENABLED is false")
        day = night_date(context)
        return dg.RunRequest(
            run_key=f"registry-{day.isoformat()}",
            tags={
                NIGHT_DATE_TAG: day.isoformat(),
                NIGHT_START_TAG: night_start(context).isoformat(),
                "dagster/priority": REGISTRY_PRIORITY,
            },
        )

    return nightly_schedule
