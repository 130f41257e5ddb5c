"""Tenant×date targeting assets: ICP candidates and the capped daily target set.

A dry run changes neither table: the candidates are counted inside a savepoint that is rolled
back, and the targets are the manifest the dry run forecasts (`targets.dry_run_targets`).
"""

from datetime import date

import dagster as dg

from leadgen_core.icp.candidates import refresh_candidates
from leadgen_core.night.stagestats import StageCounts
from leadgen_core.night.targets import TargetResult, dry_run_targets, effective_cap, select_targets
from leadgen_core.registry.upsert import latest_refresh
from leadgen_dagster.assets.registry import companies
from leadgen_dagster.partitions import parse_tenant_date, tenant_date_partitions
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.stage import CODE_VERSION, night_stage, staggered_start
from leadgen_dagster.tags import REGISTRY_STALE_TAG, is_reselect
from leadgen_dagster.vendor_resources import VendorsResource

GROUP = "targeting"
OWNERS = ["team:growth"]


def registry_snapshot(context: dg.AssetExecutionContext, postgres: PostgresResource) -> tuple[date, bool]:
    """(date of the registry snapshot this night reads, whether it is stale). Never waits: the night
    launcher starts nights once the registry run is over, or past its deadline on the last good
    snapshot (tag leadgen/registry_stale). Before the very first refresh it fails, not retried."""
    _, day = parse_tenant_date(context.partition_key)
    with postgres.shared(operation="registry snapshot") as conn:
        snapshot = latest_refresh(conn)
    if snapshot is None:
        raise dg.Failure(
            description="icp_candidates: no registry snapshot yet: run registry_refresh_job (`companies`) first",
            allow_retries=False,
        )
    return snapshot, context.run.tags.get(REGISTRY_STALE_TAG) == "true" or snapshot < day


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[companies],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description=(
        "The tenant's ICP rules evaluated over live companies: industry terms resolved to SSIC 2025 codes "
        "through ssic_ref, explicit codes and prefixes, employee and incorporation-year ranges."
    ),
)
def icp_candidates(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    staggered_start(context)
    snapshot, stale = registry_snapshot(context, postgres)
    if stale:
        context.log.warning(f"registry snapshot {snapshot} is stale for this night: running on it")
    with night_stage(context, postgres, "icp_candidates", vendors=vendors) as stage:
        # A dry run counts the candidates and keeps nothing (the savepoint is rolled back).
        with (
            postgres.tenant(stage.tenant_id, operation="icp candidates") as conn,
            conn.transaction(force_rollback=stage.dry_run),
        ):
            result = refresh_candidates(conn, tenant_id=stage.tenant_id, run_date=stage.day)
        stage.counts = StageCounts(items=result.candidates, done=result.candidates)
        stage.metadata.update(
            {
                "candidates": dg.MetadataValue.int(result.candidates),
                "registry_snapshot": dg.MetadataValue.text(snapshot.isoformat()),
                "registry_stale": dg.MetadataValue.bool(stale),
                "resolved_ssic_codes": dg.MetadataValue.int(len(result.resolved.codes)),
                "codes_by_term": dg.MetadataValue.json(result.resolved.by_term),
                "ssic_codes": dg.MetadataValue.text(", ".join(result.resolved.codes[:200])),
                "unmatched_terms": dg.MetadataValue.json(list(result.resolved.unmatched)),
            }
        )
        if result.resolved.unmatched:
            context.log.warning(f"ICP terms matched no SSIC code: {list(result.resolved.unmatched)}")
    return stage.result()


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[icp_candidates],
    group_name=GROUP,
    kinds={"postgres"},
    owners=OWNERS,
    description=(
        "The night's capped target set (SCHED_DAILY_CAP_PER_TENANT, per-tenant override in tenant_budgets): "
        "never-scored first, then without contacts, then most recently seen; suppressed companies excluded. "
        "Stored in daily_targets as the run manifest, fixed by the date's first real night: a re-run keeps it "
        "unless tagged leadgen/reselect=true."
    ),
)
def daily_targets(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    with night_stage(context, postgres, "daily_targets", vendors=vendors) as stage:
        default_cap = settings.get().daily_cap_per_tenant
        with postgres.tenant(stage.tenant_id, operation="target selection") as conn:
            if stage.dry_run:
                ids = dry_run_targets(conn, tenant_id=stage.tenant_id, run_date=stage.day, default_cap=default_cap)
                cap = effective_cap(conn, tenant_id=stage.tenant_id, default_cap=default_cap)
                result = TargetResult(len(ids), cap)
            else:
                result = select_targets(
                    conn,
                    tenant_id=stage.tenant_id,
                    run_date=stage.day,
                    default_cap=default_cap,
                    run_id=context.run_id,
                    reselect=is_reselect(context.run.tags),
                )
        stage.counts = StageCounts(items=result.selected, done=result.selected)
        stage.metadata.update(
            {
                "targets": dg.MetadataValue.int(result.selected),
                "cap": dg.MetadataValue.int(result.cap),
                "targets_kept": dg.MetadataValue.bool(result.kept),
            }
        )
    return stage.result()
