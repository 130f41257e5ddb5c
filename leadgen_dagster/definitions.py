"""The code location: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from leadgen_core.settings import get_settings
from leadgen_dagster.assets.crm import CRM_ASSETS, odoo_sync
from leadgen_dagster.assets.enrichment import ENRICHMENT_ASSETS
from leadgen_dagster.assets.registry import acra_staging, companies
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from leadgen_dagster.checks import DATA_CHECKS, build_night_checks
from leadgen_dagster.jobs import AssetJob, build_tenant_night_job, registry_refresh_job, staging_upsert_job
from leadgen_dagster.night_launcher import night_launcher_sensor
from leadgen_dagster.resources import PostgresResource, SettingsResource, alerts_resource
from leadgen_dagster.retention import retention_job, retention_schedule
from leadgen_dagster.schedules import build_nightly_schedule
from leadgen_dagster.sensors import (
    background_jobs_sensor,
    build_deadline_sensor,
    build_failure_sensor,
    tenant_partitions_sensor,
)
from leadgen_dagster.summary_sensor import build_summary_sensor
from leadgen_dagster.vendor_resources import enrichment_resources

TENANT_ASSETS = [icp_candidates, daily_targets, *ENRICHMENT_ASSETS, *CRM_ASSETS]
TERMINAL_ASSET = odoo_sync
TERMINAL_STAGE = "odoo_sync"

ASSETS = [acra_staging, companies, *TENANT_ASSETS]
CHECKS = [*DATA_CHECKS, *build_night_checks(TERMINAL_ASSET)]
tenant_night_job = build_tenant_night_job(dg.AssetSelection.assets(*TENANT_ASSETS))
JOBS: list[dg.JobDefinition | AssetJob] = [
    registry_refresh_job,
    tenant_night_job,
    staging_upsert_job,
    retention_job,
]


def resources() -> dict[str, object]:
    return {
        "postgres": PostgresResource(dsn=dg.EnvVar("LEADGEN_APP_DATABASE_URL"), max_size=get_settings().pool_max_size),
        "settings": SettingsResource(),
        "alerts": alerts_resource(),
        **enrichment_resources(),
    }


defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=JOBS,
    schedules=[
        build_nightly_schedule(get_settings().sched_start_cron),
        retention_schedule,
    ],
    sensors=[
        tenant_partitions_sensor,
        night_launcher_sensor,
        background_jobs_sensor,
        build_failure_sensor(),  # every job here, the UI's asset job too
        build_deadline_sensor(TERMINAL_STAGE),
        build_summary_sensor(TERMINAL_STAGE),
    ],
    resources=resources(),
    executor=dg.in_process_executor,
)
