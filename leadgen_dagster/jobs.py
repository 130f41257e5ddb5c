"""Jobs: the registry refresh, the tenant night, and the background upsert."""

from typing import Any, TypeAlias

import dagster as dg

from leadgen_core.registry.jobs import run_staging_upsert
from leadgen_dagster.resources import PostgresResource, SettingsResource

# What dg.define_asset_job returns (UnresolvedAssetJobDefinition) is not exported by dagster, and
# leadgen imports nothing private: these jobs only go to dg.Definitions and schedules as they are.
AssetJob: TypeAlias = Any

registry_refresh_job = dg.define_asset_job(
    name="registry_refresh_job",
    selection=dg.AssetSelection.groups("registry"),
    description="ACRA pull into staging, then the set-based companies upsert, for one date.",
    executor_def=dg.in_process_executor,
)


def build_tenant_night_job(selection: dg.AssetSelection) -> AssetJob:
    # In-process: the night is a chain, so process-per-step buys no parallelism and costs ~2 s a step.
    return dg.define_asset_job(
        name="tenant_night_job",
        selection=selection,
        description="One tenant's night: every tenant×date stage and its checks, for one date|tenant partition.",
        executor_def=dg.in_process_executor,
    )


class StagingUpsertConfig(dg.Config):
    job_id: int
    tenant_id: str


@dg.op(description="Run one queued staging→companies upsert job in bounded batches.")
def staging_upsert(
    context: dg.OpExecutionContext,
    config: StagingUpsertConfig,
    postgres: PostgresResource,
    settings: SettingsResource,
) -> None:
    from leadgen_core.clock import today_sg

    s = settings.get()

    def progress(done: int, total: int) -> None:
        context.log.info(f"background job {config.job_id}: {done}/{total} rows upserted")

    n = run_staging_upsert(
        lambda: postgres.tenant(config.tenant_id, operation="background job"),
        lambda: postgres.shared(operation="background upsert"),
        job_id=config.job_id,
        run_id=context.run_id,
        max_rows=s.upsert_max_per_job,
        batch_size=s.staging_batch_size,
        today=today_sg(),
        progress=progress,
    )
    context.log.info(f"background job {config.job_id} done: {n} rows")


@dg.job(
    description="Runs a queued background staging→companies upsert (see `leadgen jobs`).",
    executor_def=dg.in_process_executor,
)
def staging_upsert_job() -> None:
    staging_upsert()
