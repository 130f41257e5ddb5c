"""The global, date-partitioned registry assets: ACRA staging and companies."""

import asyncio
from datetime import date

import dagster as dg

from leadgen_core.errors import ConfigError
from leadgen_core.registry import upsert_companies
from leadgen_core.registry_load import LoadCounts, load_records
from leadgen_dagster.partitions import daily_partitions, parse_date
from leadgen_dagster.resources import PostgresResource, SettingsResource

GROUP = "registry"
OWNERS = ["team:data-platform"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    pool="acra",
    description=(
        "ACRA open-data registry pulled through the CKAN datastore API (ACRA_API_URL, ACRA_RESOURCE_IDS) "
        "into staging_acra_companies; malformed rows are quarantined in staging_acra_rejects with a reason."
    ),
)
def acra_staging(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.MaterializeResult:
    from leadgen_core.acra.api import fetch_datastore

    day = parse_date(context.partition_key)
    s = settings.get()
    if not s.acra_resource_ids:
        raise ConfigError("ACRA_RESOURCE_IDS is empty: set it, or run `leadgen sandbox up` for the synthetic registry")
    total = LoadCounts()
    for resource_id in s.acra_resource_ids:

        def progress(seen: int, rejected: int, rid: str = resource_id) -> None:
            context.log.info(f"acra {rid}: {seen} rows read, {rejected} quarantined")

        counts = asyncio.run(
            load_records(
                fetch_datastore(
                    api_url=s.acra_api_url,
                    resource_id=resource_id,
                    page_size=s.acra_page_size,
                    max_pages=s.acra_max_pages,
                ),
                conn=lambda: postgres.shared(operation="acra staging"),
                snapshot_date=day,
                source=f"datastore:{resource_id}",
                progress=progress,
            )
        )
        total.seen += counts.seen
        total.staged += counts.staged
        total.rejected += counts.rejected
        total.reasons.update(counts.reasons)
        total.seconds += counts.seconds
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
    with postgres.shared(operation="companies upsert") as conn:
        counts = upsert_companies(conn, snapshot_date=day)
    context.log.info(f"companies: {counts.inserted} new, {counts.updated} changed, {counts.unchanged} unchanged")
    return dg.MaterializeResult(
        metadata={
            "staged": dg.MetadataValue.int(counts.staged),
            "inserted": dg.MetadataValue.int(counts.inserted),
            "updated": dg.MetadataValue.int(counts.updated),
            "unchanged": dg.MetadataValue.int(counts.unchanged),
        }
    )
