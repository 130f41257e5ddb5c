"""The code location: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from leadgen_core.settings import get_settings
from leadgen_dagster.assets.registry import acra_staging, companies
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from leadgen_dagster.checks import build_night_checks, targets_are_sound
from leadgen_dagster.jobs import build_tenant_night_job, registry_refresh_job, staging_upsert_job
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.schedules import build_nightly_schedule, registry_schedule
from leadgen_dagster.sensors import (
    background_jobs_sensor,
    build_deadline_sensor,
    build_failure_sensor,
    tenant_partitions_sensor,
)

TENANT_ASSETS = [icp_candidates, daily_targets]
TERMINAL_ASSET = daily_targets
TERMINAL_STAGE = "daily_targets"

ASSETS = [acra_staging, companies, *TENANT_ASSETS]
CHECKS = [targets_are_sound, *build_night_checks(TERMINAL_ASSET)]
tenant_night_job = build_tenant_night_job(dg.AssetSelection.assets(*TENANT_ASSETS))


def resources() -> dict[str, object]:
    return {
        "postgres": PostgresResource(dsn=dg.EnvVar("LEADGEN_APP_DATABASE_URL")),
        "settings": SettingsResource(),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[registry_refresh_job, tenant_night_job, staging_upsert_job],
    schedules=[registry_schedule, build_nightly_schedule(tenant_night_job, get_settings().sched_start_cron)],
    sensors=[
        tenant_partitions_sensor,
        background_jobs_sensor,
        build_failure_sensor([registry_refresh_job, tenant_night_job, staging_upsert_job]),
        build_deadline_sensor(TERMINAL_STAGE),
    ],
    resources=resources(),
    executor=dg.in_process_executor,
)
