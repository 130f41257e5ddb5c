"""The daily retention job: crawled text, stale verifications and expired vendor responses purged."""

from datetime import UTC, datetime

import dagster as dg

from leadgen_core.leads.retention import purge
from leadgen_core.settings import TIMEZONE
from leadgen_dagster.resources import PostgresResource, SettingsResource

RETENTION_CRON = "30 3 * * *"  # 03:30 Singapore: after the night's runs, before the working day


@dg.op(
    description=(
        "Clear crawled page text and extraction summaries older than RETENTION_DAYS, delete email "
        "verifications older than EMAIL_VERIFY_TTL_DAYS and vendor responses past their expiry."
    )
)
def purge_expired_data(
    context: dg.OpExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.Output[dict[str, int]]:
    s = settings.get()
    with postgres.shared(operation="retention purge") as conn:
        result = purge(
            conn,
            now=datetime.now(UTC),
            retention_days=s.retention_days,
            verify_ttl_days=s.email_verify_ttl_days,
        )
    counts = result.as_dict()
    context.log.info(f"retention: {counts}")
    return dg.Output(counts, metadata={k: dg.MetadataValue.int(v) for k, v in counts.items()})


@dg.job(
    name="retention_job",
    description="Daily data retention over the shared tables (no tenant data is deleted).",
    executor_def=dg.in_process_executor,
)
def retention_job() -> None:
    purge_expired_data()


retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule",
    job=retention_job,
    cron_schedule=RETENTION_CRON,
    execution_timezone=TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="03:30 Asia/Singapore: the retention job.",
)
