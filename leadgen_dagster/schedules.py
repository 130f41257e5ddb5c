"""The nightly schedules, 00:30 and 01:00 Asia/Singapore.

The registry refresh runs first, at 00:30, with a higher queue priority. The 01:00 tick launches
one run per active tenant, tagged `leadgen/tenant=<id>` and `leadgen/start_after_s` (the tenants
launched together start SCHED_TENANT_STAGGER_S apart, leadgen_core.stagger, so they do not move
through the shared vendor buckets in step); each run's first stage waits (up to
REGISTRY_WAIT_MINUTES) for the date's `companies` partition, so no tenant stage reads a registry
that is not yet refreshed. Missed ticks are caught up by the daemon (dagster.yaml).
"""

from datetime import date

import dagster as dg

from leadgen_core.settings import TIMEZONE, Settings
from leadgen_core.stagger import start_offsets
from leadgen_core.tenants import active_tenant_ids, directory
from leadgen_dagster.assets.targeting import SCHEDULED_TAG
from leadgen_dagster.jobs import AssetJob, registry_refresh_job
from leadgen_dagster.partitions import TENANTS_PARTITION, tenant_date_key
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.tags import START_AFTER_TAG, TENANT_TAG

REGISTRY_CRON = "30 0 * * *"
NIGHT_PRIORITY = "5"
REGISTRY_PRIORITY = "10"


def night_date(context: dg.ScheduleEvaluationContext) -> date:
    from leadgen_core.clock import sg_date

    assert context.scheduled_execution_time is not None
    return sg_date(context.scheduled_execution_time)


def night_requests(
    context: dg.ScheduleEvaluationContext, postgres: PostgresResource, settings: Settings
) -> list[dg.RunRequest]:
    day = night_date(context)
    with postgres.shared(operation="nightly schedule") as conn:
        wanted = active_tenant_ids(directory(conn), include=settings.tenant_include, exclude=settings.tenant_exclude)
    known = set(context.instance.get_dynamic_partitions(TENANTS_PARTITION))
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
                "dagster/priority": NIGHT_PRIORITY,
                START_AFTER_TAG: f"{offsets[tenant]:g}",
            },  # fmt: skip
        )
        for tenant in tenants
    ]


def build_nightly_schedule(job: AssetJob, cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="nightly_schedule",
        cron_schedule=cron,
        execution_timezone=TIMEZONE,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="01:00 Asia/Singapore: one tenant_night_job run per active tenant for the night's date.",
    )
    def nightly_schedule(
        context: dg.ScheduleEvaluationContext, postgres: PostgresResource, settings: SettingsResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        s = settings.get()
        if not s.sched_enabled:
            return dg.SkipReason("SCHED_ENABLED is false")
        requests = night_requests(context, postgres, s)
        return requests or dg.SkipReason("no active tenant with an Odoo connection")

    return nightly_schedule


@dg.schedule(
    cron_schedule=REGISTRY_CRON,
    execution_timezone=TIMEZONE,
    job=registry_refresh_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="00:30 Asia/Singapore: refresh ACRA staging and companies for the night's date.",
)
def registry_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = night_date(context)
    return dg.RunRequest(
        run_key=f"registry-{day.isoformat()}",
        partition_key=day.isoformat(),
        tags={"dagster/priority": REGISTRY_PRIORITY},
    )
