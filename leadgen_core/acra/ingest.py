"""The registry ingest shared by the `acra_staging` asset and `leadgen demo seed`: every configured
ACRA datastore resource, page by page, through the loader into staging (bad rows quarantined)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from leadgen_core.acra.api import fetch_datastore
from leadgen_core.errors import ConfigError
from leadgen_core.registry_load import ConnFactory, LoadCounts, load_records
from leadgen_core.settings import Settings

Progress = Callable[[str, int, int], None]  # resource id, rows seen, rows quarantined


async def stage_registry(
    settings: Settings, *, conn: ConnFactory, day: date, progress: Progress | None = None
) -> LoadCounts:
    """Stage the DAY's rows of every resource in ACRA_RESOURCE_IDS; the counts summed over them."""
    if not settings.acra_resource_ids:
        raise ConfigError("ACRA_RESOURCE_IDS is empty: set it, or run `leadgen sandbox up` for the synthetic registry")
    total = LoadCounts()
    for resource_id in settings.acra_resource_ids:

        def report(seen: int, rejected: int, rid: str = resource_id) -> None:
            if progress is not None:
                progress(rid, seen, rejected)

        counts = await load_records(
            fetch_datastore(
                api_url=settings.acra_api_url,
                resource_id=resource_id,
                page_size=settings.acra_page_size,
                max_pages=settings.acra_max_pages,
            ),
            conn=conn,
            snapshot_date=day,
            source=f"datastore:{resource_id}",
            progress=report,
        )
        total.seen += counts.seen
        total.staged += counts.staged
        total.rejected += counts.rejected
        total.reasons.update(counts.reasons)
        total.seconds += counts.seconds
    return total
