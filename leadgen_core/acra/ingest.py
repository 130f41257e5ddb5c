"""The registry ingest shared by the `acra_staging` asset and `leadgen demo seed`: every configured
ACRA dataset into staging, bad rows quarantined with a reason.

With ACRA_FETCH=download (the default) each dataset arrives as one CSV through the download API
and goes through csv_source.iter_csv and the loader, exactly as `leadgen acra load` does with a
file. With ACRA_FETCH=datastore it is paged through datastore_search (small or filtered datasets).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from leadgen_core.acra.api import fetch_datastore
from leadgen_core.acra.csv_source import iter_csv
from leadgen_core.acra.download import DownloadOptions, download_csv, scratch_csv
from leadgen_core.errors import ConfigError
from leadgen_core.registry.load import ConnFactory, LoadCounts, load_records, load_rows
from leadgen_core.settings import Settings

Progress = Callable[[str, int, int], None]  # resource id, rows seen, rows quarantined


def download_options(settings: Settings) -> DownloadOptions:
    key = settings.acra_api_key.get_secret_value() if settings.acra_api_key else None
    return DownloadOptions(
        base_url=settings.acra_download_url,
        api_key=key or None,
        poll_interval_s=settings.acra_poll_interval_s,
        max_polls=settings.acra_max_polls,
    )


async def _stage_one(
    settings: Settings, *, dataset_id: str, conn: ConnFactory, day: date, report: Callable[[int, int], None]
) -> LoadCounts:
    if settings.acra_fetch == "datastore":
        key = settings.acra_api_key.get_secret_value() if settings.acra_api_key else None
        records = fetch_datastore(
            api_url=settings.acra_api_url,
            resource_id=dataset_id,
            page_size=settings.acra_page_size,
            max_pages=settings.acra_max_pages,
            api_key=key or None,
        )
        return await load_records(
            records, conn=conn, snapshot_date=day, source=f"datastore:{dataset_id}", progress=report
        )
    with scratch_csv(dataset_id) as path:
        await download_csv(dataset_id, path, options=download_options(settings))
        return load_rows(iter_csv(path), conn=conn, snapshot_date=day, source=f"download:{dataset_id}", progress=report)


async def stage_registry(
    settings: Settings, *, conn: ConnFactory, day: date, progress: Progress | None = None
) -> LoadCounts:
    """Stage every dataset in ACRA_RESOURCE_IDS as the DAY's snapshot; the counts summed over them."""
    if not settings.acra_resource_ids:
        raise ConfigError("ACRA_RESOURCE_IDS is empty: set it, or run `leadgen sandbox up` for the synthetic registry")
    total = LoadCounts()
    for dataset_id in settings.acra_resource_ids:

        def report(seen: int, rejected: int, rid: str = dataset_id) -> None:
            if progress is not None:
                progress(rid, seen, rejected)

        counts = await _stage_one(settings, dataset_id=dataset_id, conn=conn, day=day, report=report)
        total.seen += counts.seen
        total.staged += counts.staged
        total.rejected += counts.rejected
        total.reasons.update(counts.reasons)
        total.seconds += counts.seconds
    return total
