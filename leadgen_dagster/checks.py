"""Per-partition asset checks: the SLA, the vendor budget caps, and the night's data quality.

The SLA and budget checks sit on the night's last asset, so they evaluate once the night is
done; the deadline sensor covers nights that never get there. `targets_not_empty` is blocking:
an empty target set while eligible candidates exist stops the night. The other data checks are
non-blocking and ask only what no constraint already enforces (leadgen_core/night/quality.py).
"""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import dagster as dg

from leadgen_core.clock import today_sg
from leadgen_core.night.quality import contact_hygiene, score_consistency, target_anomalies
from leadgen_core.night.stagestats import night_stats, night_wall_seconds
from leadgen_core.spend.budget import caps_for, spend
from leadgen_dagster.assets.targeting import daily_targets
from leadgen_dagster.partitions import parse_tenant_date, tenant_date_partitions
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.stage import night_dry_run
from leadgen_dagster.tags import night_clock_start, root_run_id
from leadgen_dagster.vendor_resources import VendorsResource

# A night's target count moving more than this from the previous night is worth a look.
TARGET_SWING = 0.5


def _partition(context: Any) -> tuple[str, Any]:
    return parse_tenant_date(context.partition_key)


def build_night_checks(terminal: dg.AssetsDefinition) -> Sequence[dg.AssetChecksDefinition]:
    """SLA and budget checks on the night's terminal asset."""

    @dg.asset_check(
        asset=terminal,
        name="night_within_sla",
        partitions_def=tenant_date_partitions,
        description="From the night's 01:00 tick (scheduled nights; else its first stage start) to its last stage "
        "end (its run and re-executions) is at most SLA_MINUTES (default 90).",
    )
    def night_within_sla(
        context: dg.AssetCheckExecutionContext,
        postgres: PostgresResource,
        settings: SettingsResource,
        vendors: VendorsResource,
    ) -> dg.AssetCheckResult:
        tenant_id, day = _partition(context)
        limit_s = settings.get().sla_minutes * 60
        if night_dry_run(context, vendors):  # a dry run times nothing: the forecast is its estimate
            return dg.AssetCheckResult(
                passed=True,
                description="dry run: the night was not timed (its forecast holds the estimated duration)",
                metadata={"dry_run": dg.MetadataValue.bool(True), "limit_s": dg.MetadataValue.int(limit_s)},
            )
        with postgres.tenant(tenant_id, operation="sla check") as conn:
            stats = night_stats(conn, tenant_id=tenant_id, run_date=day, root_run_id=root_run_id(context.run))
        # A scheduled night's clock starts at its 01:00 tick, registry time included; a re-execution
        # inherits that tag days later, so only the night's first run is timed from it.
        first_run = root_run_id(context.run) == context.run.run_id
        wall = night_wall_seconds(stats, clock_start=night_clock_start(context.run.tags) if first_run else None)
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
        description=(
            "For each vendor, the tenant's units are at most its cap on the ledger days this run could "
            "have charged: today and yesterday in Singapore (the ledger counts the day money is spent)."
        ),
    )
    def vendor_budgets_within_caps(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
    ) -> dg.AssetCheckResult:
        tenant_id, _night = _partition(context)
        today = today_sg()
        with postgres.tenant(tenant_id, operation="budget check") as conn:
            caps = caps_for(conn, tenant_id=tenant_id, defaults=settings.get().vendor_caps())
            yesterday = spend(conn, tenant_id=tenant_id, day=today - timedelta(days=1), caps=caps)
            usage = spend(conn, tenant_id=tenant_id, day=today, caps=caps)
        over = sorted({u.vendor for u in (*yesterday, *usage) if not u.within_cap})
        return dg.AssetCheckResult(
            passed=not over,
            metadata={
                "ledger_day": dg.MetadataValue.text(today.isoformat()),
                **{f"{u.vendor}_units": dg.MetadataValue.int(u.units) for u in usage},
                **{f"{u.vendor}_cap": dg.MetadataValue.int(u.cap) for u in usage},
                "over_cap": dg.MetadataValue.json(over),
            },
        )

    return [night_within_sla, vendor_budgets_within_caps]


def _scoped(context: Any, postgres: PostgresResource, operation: str):  # type: ignore[no-untyped-def]
    tenant_id, day = _partition(context)
    return tenant_id, day, postgres.tenant(tenant_id, operation=operation)


@dg.asset_check(
    asset=daily_targets,
    partitions_def=tenant_date_partitions,
    blocking=True,
    description="Blocking: the night has targets whenever the tenant has eligible (unsuppressed) candidates; "
    "an empty set there means selection broke, and nothing downstream should run on it.",
)
def targets_not_empty(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    tenant_id, day, conn_cm = _scoped(context, postgres, "target checks")
    with conn_cm as conn:
        a = target_anomalies(conn, tenant_id=tenant_id, run_date=day)
    return dg.AssetCheckResult(
        passed=not a.empty_with_candidates,
        description=f"0 targets although {a.eligible} candidates are eligible" if a.empty_with_candidates else None,
        metadata={"targets": dg.MetadataValue.int(a.targets), "eligible": dg.MetadataValue.int(a.eligible)},
    )


@dg.asset_check(
    asset=daily_targets,
    partitions_def=tenant_date_partitions,
    description=f"Warns when the target count moves more than {TARGET_SWING:.0%} from the tenant's previous night "
    "(a changed ICP, a registry that lost rows, a cap set by mistake).",
)
def targets_stable(context: dg.AssetCheckExecutionContext, postgres: PostgresResource) -> dg.AssetCheckResult:
    tenant_id, day, conn_cm = _scoped(context, postgres, "target checks")
    with conn_cm as conn:
        a = target_anomalies(conn, tenant_id=tenant_id, run_date=day)
    swing = a.swing
    passed = swing is None or abs(swing) <= TARGET_SWING
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if passed else f"{a.targets} targets against {a.previous} the previous night ({swing:+.0%})",
        metadata={
            "targets": dg.MetadataValue.int(a.targets),
            "previous_targets": dg.MetadataValue.int(a.previous),
            "swing": dg.MetadataValue.float(round(swing, 3) if swing is not None else 0.0),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey("lead_scores"),
    partitions_def=tenant_date_partitions,
    description="Every score is in [0, 1] and its bucket agrees with the bucket thresholds.",
)
def scores_consistent(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.AssetCheckResult:
    from leadgen_core.leads.score_stage import thresholds_for

    t = thresholds_for(settings.get())
    tenant_id, day, conn_cm = _scoped(context, postgres, "score checks")
    with conn_cm as conn:
        c = score_consistency(conn, tenant_id=tenant_id, run_date=day, high=t.high, medium=t.medium)
    problems = [f"{c.out_of_range} scores outside [0, 1]"] * bool(c.out_of_range) + [
        f"{c.wrong_bucket} buckets disagree with the thresholds (high >= {t.high}, medium >= {t.medium})"
    ] * bool(c.wrong_bucket)
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={
            "scores": dg.MetadataValue.int(c.scores),
            "out_of_range": dg.MetadataValue.int(c.out_of_range),
            "wrong_bucket": dg.MetadataValue.int(c.wrong_bucket),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey("contacts"),
    partitions_def=tenant_date_partitions,
    description="No address of the night's targets is suppressed by the tenant (address, domain or subdomain), "
    "and every contact's address has evidence tying it to its company (lead_emails: source and page).",
)
def contacts_clean(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.AssetCheckResult:
    tenant_id, day, conn_cm = _scoped(context, postgres, "contact checks")
    with conn_cm as conn:
        h = contact_hygiene(conn, tenant_id=tenant_id, run_date=day, ttl_days=settings.get().email_verify_ttl_days)
    problems = [f"{h.suppressed} suppressed addresses among the night's contacts"] * bool(h.suppressed) + [
        f"{h.without_evidence} contacts whose address no evidence ties to their company"
    ] * bool(h.without_evidence)
    return dg.AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
        metadata={
            "addresses": dg.MetadataValue.int(h.addresses),
            "suppressed": dg.MetadataValue.int(h.suppressed),
            "without_evidence": dg.MetadataValue.int(h.without_evidence),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey("email_verifications"),
    partitions_def=tenant_date_partitions,
    description="No address of the night's targets was verified (paid for) twice within EMAIL_VERIFY_TTL_DAYS.",
)
def verifications_not_repeated(
    context: dg.AssetCheckExecutionContext, postgres: PostgresResource, settings: SettingsResource
) -> dg.AssetCheckResult:
    ttl = settings.get().email_verify_ttl_days
    tenant_id, day, conn_cm = _scoped(context, postgres, "verification checks")
    with conn_cm as conn:
        h = contact_hygiene(conn, tenant_id=tenant_id, run_date=day, ttl_days=ttl)
    return dg.AssetCheckResult(
        passed=h.verified_twice == 0,
        description=f"{h.verified_twice} addresses verified twice within {ttl} days" if h.verified_twice else None,
        metadata={
            "addresses": dg.MetadataValue.int(h.addresses),
            "verified_twice": dg.MetadataValue.int(h.verified_twice),
        },
    )


DATA_CHECKS = [
    targets_not_empty,
    targets_stable,
    scores_consistent,
    contacts_clean,
    verifications_not_repeated,
]
