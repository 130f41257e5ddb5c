"""The global registry assets, ACRA staging and companies: one current snapshot, unpartitioned.

The registry is what data.gov.sg serves today; nothing can fetch it as of an older date. So it
is not partitioned: each refresh replaces the current snapshot (labelled with its Singapore
fetch date), and every tenant×date partition reads the snapshot current when it runs. A backfill
of tenant partitions therefore needs no registry runs, and old dates never relabel staging.
"""

import time
from datetime import date

import dagster as dg

from leadgen_core import event_loop
from leadgen_core.clock import today_sg
from leadgen_core.errors import ConfigError
from leadgen_core.registry.upsert import latest_staged, refresh_finished, upsert_companies
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.retries import TRANSIENT_RETRY, last_attempt, permanent_failures
from leadgen_dagster.stage import CODE_VERSION

GROUP = "registry"
OWNERS = ["team:data-platform"]


REFETCH_TAG = "leadgen/registry_refetch"  # "true": download even if today's snapshot is already in


def fetch_date() -> date:
    """Today in Singapore: the label of a snapshot fetched now."""
    return today_sg()


@dg.asset(
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    pool="acra",  # one registry download at a time (dagster.yaml pools.default_limit: 1)
    retry_policy=TRANSIENT_RETRY,
    description=(
        "The current ACRA registry: each dataset of ACRA_RESOURCE_IDS downloaded as one CSV through data.gov.sg's "
        "download API into staging_acra_companies, labelled with today's date (SGT); malformed rows quarantined in "
        "staging_acra_rejects with a reason. A snapshot already fetched today is reused (catch-up runs download once)."
    ),
)
def acra_staging(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.MaterializeResult:
    from leadgen_core.acra.ingest import stage_registry

    day = fetch_date()
    with postgres.shared(operation="registry snapshot") as conn:
        fetched_today = refresh_finished(conn, day)
    if fetched_today and context.run.tags.get(REFETCH_TAG) != "true":
        context.log.info(f"registry snapshot {day} already refreshed today: not downloaded again")
        return dg.MaterializeResult(
            metadata={"snapshot_date": dg.MetadataValue.text(day.isoformat()), "reused": dg.MetadataValue.bool(True)}
        )

    def progress(resource_id: str, seen: int, rejected: int) -> None:
        context.log.info(f"acra {resource_id}: {seen} rows read, {rejected} quarantined")

    with last_attempt(context, "acra_staging"), permanent_failures("acra_staging"):
        total = event_loop.run(
            stage_registry(
                settings.get(), conn=lambda: postgres.shared(operation="acra staging"), day=day, progress=progress
            )
        )
    if total.rejected:
        context.log.warning(f"{total.rejected} malformed registry rows quarantined: {dict(total.reasons)}")
    return dg.MaterializeResult(
        metadata={
            "snapshot_date": dg.MetadataValue.text(day.isoformat()),
            "reused": dg.MetadataValue.bool(False),
            "rows_seen": dg.MetadataValue.int(total.seen),
            "rows_staged": dg.MetadataValue.int(total.staged),
            "rows_rejected": dg.MetadataValue.int(total.rejected),
            "reject_reasons": dg.MetadataValue.json(dict(total.reasons.most_common(20))),
            "duration_s": dg.MetadataValue.float(round(total.seconds, 2)),
        }
    )


@dg.asset(
    code_version=CODE_VERSION,
    deps=[acra_staging],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description=(
        "Companies upserted set-based from the newest staged snapshot: new UENs inserted, rows whose content hash "
        "changed rewritten, last_seen moved forward. Records the snapshot in registry_refreshes (what tenant "
        "nights report as their registry snapshot)."
    ),
)
def companies(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    started = time.monotonic()
    with permanent_failures("companies"), postgres.shared(operation="companies upsert") as conn:
        day = latest_staged(conn)
        if day is None:
            raise ConfigError("staging_acra_companies is empty: materialise acra_staging first")
        counts = upsert_companies(conn, snapshot_date=day)
    seconds = time.monotonic() - started
    context.log.info(f"companies: {counts.inserted} new, {counts.updated} changed, {counts.unchanged} unchanged")
    return dg.MaterializeResult(
        metadata={
            "snapshot_date": dg.MetadataValue.text(day.isoformat()),
            "staged": dg.MetadataValue.int(counts.staged),
            "inserted": dg.MetadataValue.int(counts.inserted),
            "updated": dg.MetadataValue.int(counts.updated),
            "unchanged": dg.MetadataValue.int(counts.unchanged),
            "duration_s": dg.MetadataValue.float(round(seconds, 2)),
        }
    )
