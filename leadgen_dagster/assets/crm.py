"""Tenant×date scoring and CRM assets: lead scores with rationales, then the Odoo sync."""

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import dagster as dg

from leadgen_core.leads.preview import markdown_table
from leadgen_core.leads.score_stage import ScoreContext, ScoreReport, run_score_stage
from leadgen_core.leads.sync_stage import SyncContext, SyncReport, run_sync_stage
from leadgen_dagster.partitions import tenant_date_partitions
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.retries import TRANSIENT_RETRY
from leadgen_dagster.stage import CODE_VERSION, night_stage, numeric_metadata
from leadgen_dagster.vendor_resources import VendorsResource

OWNERS = ["team:growth"]


def score_metadata(report: ScoreReport) -> dict[str, Any]:
    s = report.summary
    meta: dict[str, Any] = {
        "scored": dg.MetadataValue.int(s.count),
        "pending_at_start": dg.MetadataValue.int(report.pending),
        "avg_score": dg.MetadataValue.float(s.average),
        **numeric_metadata("bucket_", {b: s.buckets.get(b, 0) for b in ("high", "medium", "low")}),
        **numeric_metadata("degraded_", report.degraded_by_reason()),
        "units_openai": dg.MetadataValue.int(report.spent.get("openai", 0)),
        "rationale_sources": dg.MetadataValue.json(s.sources),
        "degraded_by_reason": dg.MetadataValue.json(report.degraded_by_reason()),
        "openai_tokens": dg.MetadataValue.int(report.spent.get("openai", 0)),
        "cache_hits": dg.MetadataValue.int(report.cache_hits.get("openai", 0)),
        "rationale_requests": dg.MetadataValue.int(report.rationale_requests),
        "dry_run": dg.MetadataValue.bool(report.dry_run),
    }
    table = markdown_table(report.top)
    if report.dry_run:
        meta["forecast"] = dg.MetadataValue.json({"calls": report.forecast_calls, "units": report.forecast_units})
        table = "_Dry run: nothing was stored; template rationales stand in for the LLM's._\n\n" + table
    meta["top_leads"] = dg.MetadataValue.md(table)
    return meta


SYNCED_ACTIONS = frozenset({"created", "updated", "unchanged"})  # in Odoo after the run; not skips or errors


def synced_by_model(items: Mapping[str, int]) -> dict[str, int]:
    """`res.partner:created` and `res.partner:updated` → `res.partner`: the records in step per Odoo model."""
    by_model: Counter[str] = Counter()
    for key, n in items.items():
        model, _, action = key.partition(":")
        by_model[model] += n if action in SYNCED_ACTIONS else 0
    return dict(by_model)


def sync_metadata(report: SyncReport) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "companies": dg.MetadataValue.int(len(report.outcomes)),
        "not_yet_scored": dg.MetadataValue.int(report.unscored),
        "leads_exported": dg.MetadataValue.int(report.leads_exported),
        "item_errors": dg.MetadataValue.int(report.errors),
        "odoo_calls": dg.MetadataValue.int(report.odoo_calls),
        **numeric_metadata("synced_", synced_by_model(report.items)),
        "dry_run": dg.MetadataValue.bool(report.dry_run),
    }
    if report.dry_run:
        meta["forecast"] = dg.MetadataValue.json({"odoo_writes": sum(report.items.values())})
    return meta


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[dg.AssetKey("email_verifications")],
    group_name="scoring",
    kinds={"python", "postgres", "openai"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Each target scored from its features with the tenant's weights (icp_rules.payload.weights), with "
        "per-feature contributions, a bucket and a rationale (LLM through the budget and response cache, "
        "template when degraded). Stored in lead_features and lead_scores; re-runs redo only unfinished targets."
    ),
)
def lead_scores(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    with night_stage(context, postgres, "lead_scores", vendors=vendors) as stage:
        conns = postgres.stage_connections(stage.tenant_id, operation="lead scoring")
        report = run_score_stage(
            ScoreContext(
                tenant_id=stage.tenant_id,
                day=stage.day,
                run_id=context.run_id,
                settings=settings.get(),
                tenant_conn=conns.tenant_conn,
                global_conn=conns.global_conn,
                global_statement=conns.global_statement,
                tenant_pipe=conns.tenant_pipe,
                dry_run=stage.dry_run,
                progress=context.log.info,
            )
        )
        stage.counts = report.counts()
        stage.metadata.update(score_metadata(report))
    return stage.result()


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[lead_scores],
    group_name="crm",
    kinds={"python", "odoo"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Scored targets upserted into the tenant's Odoo (odoo_connections; secret from the environment "
        "variable its secret_ref names): company partner by UEN, contacts as child partners (suppressions "
        "honoured), crm.lead when score >= SCORE_MIN_EXPORT. One odoo_sync_log row per item."
    ),
)
def odoo_sync(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    with night_stage(context, postgres, "odoo_sync", vendors=vendors) as stage:
        report = run_sync_stage(
            SyncContext(
                tenant_id=stage.tenant_id,
                day=stage.day,
                settings=settings.get(),
                tenant_conn=postgres.stage_connections(stage.tenant_id, operation="odoo sync").tenant_conn,
                environ=os.environ,
                dry_run=stage.dry_run,
                progress=context.log.info,
            )
        )
        stage.counts = report.counts()
        stage.metadata.update(sync_metadata(report))
    return stage.result()


CRM_ASSETS = [lead_scores, odoo_sync]
