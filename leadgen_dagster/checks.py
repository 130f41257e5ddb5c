"""Per-partition asset checks: the SLA, the vendor budget caps, and the target set's quality.

The SLA and budget checks sit on the night's last asset, so they evaluate once the night is
done; the deadline sensor covers nights that never get there. The target checks are blocking:
a bad target set stops the night before any vendor is paid.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg

from leadgen_core.budget import caps_for, spend
from leadgen_core.quality import target_quality
from leadgen_core.stagestats import night_stats, night_wall_seconds
from leadgen_core.targets import effective_cap
from leadgen_dagster.assets.targeting import daily_targets
from leadgen_dagster.partitions import parse_tenant_date, tenant_date_partitions
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.tags import is_dry_run, root_run_id


def _partition(context: Any) -> tuple[str, Any]:
    return parse_tenant_date(context.partition_key)


def build_night_checks(terminal: dg.AssetsDefinition) -> Sequence[dg.AssetChecksDefinition]:
    """SLA and budget checks on the night's terminal asset."""

    @dg.asset_check(
        asset=terminal,
        name="night_within_sla",
        partitions_def=tenant_date_partitions,
        description="First stage start to last stage end of this night (its run and re-executions) is at most "
        "SLA_MINUTES (default 90).",
    )
    def night_within_sla(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        tenant_id, day = _partition(context)
        limit_s = settings.get().sla_minutes * 60
        if is_dry_run(context.run.tags):  # a dry run times nothing: the forecast is its estimate
            return dg.AssetCheckResult(
                passed=True,
                description="dry run: the night was not timed (its forecast holds the estimated duration)",
                metadata={"dry_run": dg.MetadataValue.bool(True), "limit_s": dg.MetadataValue.int(limit_s)},
            )
        with postgres.tenant(tenant_id, operation="sla check") as conn:
            stats = night_stats(conn, tenant_id=tenant_id, run_date=day, root_run_id=root_run_id(context.run))
        wall = night_wall_seconds(stats)
        per_stage = {s.stage: round(s.seconds, 2) if s.seconds is not None else None for s in stats}
        return dg.AssetCheckResult(
            passed=wall is not None and wall <= limit_s,
            metadata={
                "wall_s": dg.MetadataValue.float(round(wall, 2) if wall is not None else -1.0),
                "limit_s": dg.MetadataValue.int(limit_s),
                "stage_seconds": dg.MetadataValue.json(per_stage),
            },
            description=None if wall is not None else "a stage of the night has not finished",
        )

    @dg.asset_check(
        asset=terminal,
        name="vendor_budgets_within_caps",
        partitions_def=tenant_date_partitions,
        description="For each vendor, the tenant's units for the day are at most its cap (vendor_usage ledger).",
    )
    def vendor_budgets_within_caps(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        tenant_id, day = _partition(context)
        with postgres.tenant(tenant_id, operation="budget check") as conn:
            caps = caps_for(conn, tenant_id=tenant_id, defaults=settings.get().vendor_caps())
            usage = spend(conn, tenant_id=tenant_id, day=day, caps=caps)
        over = [u.vendor for u in usage if not u.within_cap]
        return dg.AssetCheckResult(
            passed=not over,
            metadata={
                **{f"{u.vendor}_units": dg.MetadataValue.int(u.units) for u in usage},
                **{f"{u.vendor}_cap": dg.MetadataValue.int(u.cap) for u in usage},
                "over_cap": dg.MetadataValue.json(over),
            },
        )

    return [night_within_sla, vendor_budgets_within_caps]


@dg.asset_check(
    asset=daily_targets,
    partitions_def=tenant_date_partitions,
    blocking=True,
    description="Targets are at most the cap, have no duplicates, and all come from the candidate set.",
)
def targets_are_sound(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.AssetCheckResult:
    tenant_id, day = _partition(context)
    with postgres.tenant(tenant_id, operation="target checks") as conn:
        q = target_quality(conn, tenant_id=tenant_id, run_date=day)
        cap = effective_cap(conn, tenant_id=tenant_id, default_cap=settings.get().daily_cap_per_tenant)
    problems = []
    if q.targets > cap:
        problems.append(f"{q.targets} targets exceed the cap {cap}")
    if q.duplicates:
        problems.append(f"{q.duplicates} duplicate targets")
    if q.outside_candidates:
        problems.append(f"{q.outside_candidates} targets are not candidates")
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={
            "targets": dg.MetadataValue.int(q.targets),
            "cap": dg.MetadataValue.int(cap),
            "duplicates": dg.MetadataValue.int(q.duplicates),
            "outside_candidates": dg.MetadataValue.int(q.outside_candidates),
        },
    )
