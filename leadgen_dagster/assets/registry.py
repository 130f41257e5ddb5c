"""The global, date-partitioned registry assets: ACRA staging and companies."""

import asyncio
import time
from datetime import date

import dagster as dg

from leadgen_core.registry import upsert_companies
from leadgen_dagster.partitions import daily_partitions, parse_date
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.retries import TRANSIENT_RETRY, permanent_failures
from leadgen_dagster.stage import CODE_VERSION

GROUP = "registry"
OWNERS = ["team:data-platform"]


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=daily_partitions,
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    pool="acra",  # one registry download at a time (dagster.yaml pools.default_limit: 1)
    retry_policy=TRANSIENT_RETRY,
    description=(
        "ACRA open-data registry pulled through the CKAN datastore API (ACRA_API_URL, ACRA_RESOURCE_IDS) "
        "into staging_acra_companies; malformed rows are quarantined in staging_acra_rejects with a reason."
    ),
)
def acra_staging(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.MaterializeResult:
    from leadgen_core.acra.ingest import stage_registry

    day = parse_date(context.partition_key)

    def progress(resource_id: str, seen: int, rejected: int) -> None:
        context.log.info(f"acra {resource_id}: {seen} rows read, {rejected} quarantined")

    with permanent_failures("acra_staging"):
        total = asyncio.run(
            stage_registry(
                settings.get(), conn=lambda: postgres.shared(operation="acra staging"), day=day, progress=progress
            )
        )
    if total.rejected:
        context.log.warning(f"{total.rejected} malformed registry rows quarantined: {dict(total.reasons)}")
    return dg.MaterializeResult(
        metadata={
            "rows_seen": dg.MetadataValue.int(total.seen),
            "rows_staged": dg.MetadataValue.int(total.staged),
            "rows_rejected": dg.MetadataValue.int(total.rejected),
            "reject_reasons": dg.MetadataValue.json(dict(total.reasons.most_common(20))),
            "duration_s": dg.MetadataValue.float(round(total.seconds, 2)),
        }
    )


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=daily_partitions,
    deps=[acra_staging],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description=(
        "Companies upserted set-based from the day's staging rows: new UENs inserted, rows whose content hash "
        "changed rewritten, last_seen moved forward. Marks registry_refreshes, the barrier tenant stages wait on."
    ),
)
def companies(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    day: date = parse_date(context.partition_key)
    started = time.monotonic()
    with postgres.shared(operation="companies upsert") as conn:
        counts = upsert_companies(conn, snapshot_date=day)
    seconds = time.monotonic() - started
    context.log.info(f"companies: {counts.inserted} new, {counts.updated} changed, {counts.unchanged} unchanged")
    return dg.MaterializeResult(
        metadata={
            "staged": dg.MetadataValue.int(counts.staged),
            "inserted": dg.MetadataValue.int(counts.inserted),
            "updated": dg.MetadataValue.int(counts.updated),
            "unchanged": dg.MetadataValue.int(counts.unchanged),
            "duration_s": dg.MetadataValue.float(round(seconds, 2)),
        }
    )
