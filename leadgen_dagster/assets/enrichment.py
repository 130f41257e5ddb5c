"""Tenant×date enrichment assets: crawled sites, web extractions, contacts, email verifications.

Each body opens the stage frame (`night_stage`), builds the `EnrichContext`, makes the one
leadgen_core call for its stage and turns the `StageReport` into metadata: counts, durations,
vendor units, cache hits, degraded items by reason, and in a dry run the spend forecast.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg

from leadgen_core.enrich import (
    EnrichContext,
    StageReport,
    run_contacts_stage,
    run_crawl_stage,
    run_extract_stage,
    run_verify_stage,
)
from leadgen_dagster.assets.targeting import daily_targets
from leadgen_dagster.partitions import tenant_date_partitions
from leadgen_dagster.resources import PostgresResource, SettingsResource
from leadgen_dagster.retries import TRANSIENT_RETRY
from leadgen_dagster.stage import CODE_VERSION, night_stage, numeric_metadata
from leadgen_dagster.vendor_resources import VendorsResource, enrichment_resources

GROUP = "enrichment"
OWNERS = ["team:growth"]
StageRun = Callable[[EnrichContext], StageReport]


def report_metadata(report: StageReport) -> dict[str, Any]:
    """A stage report as Dagster metadata (plain numbers where the UI should plot them)."""
    s = report.summary()
    meta: dict[str, Any] = {
        "processed": dg.MetadataValue.int(s["processed"]),
        "degraded_by_reason": dg.MetadataValue.json(s["degraded_by_reason"]),
        "cache_hits": dg.MetadataValue.json(s["cache_hits"]),
        # single flight: answers this run waited for while another call (any tenant's) paid for them
        "shared_answers": dg.MetadataValue.json(s["shared_answers"]),
        "counters": dg.MetadataValue.json(s["counters"]),
        "timing": dg.MetadataValue.json(s["timing"]),
        "dry_run": dg.MetadataValue.bool(report.dry_run),
    }
    meta.update(numeric_metadata("units_", s["vendor_units"]))
    meta.update(numeric_metadata("degraded_", s["degraded_by_reason"]))
    if report.dry_run:
        meta["forecast_units"] = dg.MetadataValue.json(s["forecast_units"])
        meta["forecast_calls"] = dg.MetadataValue.json(s["forecast_calls"])
    return meta


def run_stage(
    context: dg.AssetExecutionContext,
    *,
    postgres: PostgresResource,
    settings: SettingsResource,
    vendors: VendorsResource,
    name: str,
    run: StageRun,
) -> dg.MaterializeResult:
    with night_stage(context, postgres, name, vendors=vendors) as stage:
        tenant_id = stage.tenant_id
        conns = postgres.stage_connections(tenant_id, operation=name)
        ctx = EnrichContext(
            tenant_id=tenant_id,
            day=stage.day,
            run_id=context.run_id,
            settings=settings.get(),
            vendors=vendors.config(),
            tenant_conn=conns.tenant_conn,
            global_conn=conns.global_conn,
            global_statement=conns.global_statement,
            tenant_pipe=conns.tenant_pipe,
            dry_run=stage.dry_run,
            progress=context.log.info,
        )
        report = run(ctx)
        stage.counts = report.counts()
        stage.metadata.update(report_metadata(report))
    return stage.result()


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[daily_targets],
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Each target's website (found with one Tavily search when unknown), crawled with robots.txt, a per-domain "
        "interval, response limits and the SSRF guard; stored in company_web_snapshots, shared across tenants."
    ),
)
def crawled_sites(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    return run_stage(context, postgres=postgres, settings=settings, vendors=vendors, name="crawled_sites",
                     run=run_crawl_stage)  # fmt: skip


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[crawled_sites],
    group_name=GROUP,
    kinds={"python", "postgres", "openai"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Company facts (description, industry, size, products, emails, key people) extracted by OpenAI structured "
        "outputs from the crawl, topped up by Tavily search/extract for thin crawls; in company_extractions."
    ),
)
def web_extractions(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    return run_stage(context, postgres=postgres, settings=settings, vendors=vendors, name="web_extractions",
                     run=run_extract_stage)  # fmt: skip


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[web_extractions],
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Contacts and lead emails from the crawl and the extraction (suppression and free-mail policy applied), "
        "with one Lusha lookup for companies left without a usable address; deduplicated by lower(email)."
    ),
)
def contacts(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    return run_stage(context, postgres=postgres, settings=settings, vendors=vendors, name="contacts",
                     run=run_contacts_stage)  # fmt: skip


@dg.asset(
    code_version=CODE_VERSION,
    partitions_def=tenant_date_partitions,
    deps=[contacts],
    group_name=GROUP,
    kinds={"python", "postgres"},
    owners=OWNERS,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "The targets' addresses not verified within EMAIL_VERIFY_TTL_DAYS, through ZeroBounce batches of up to "
        "ZEROBOUNCE_BATCH_SIZE (200) (suppressed addresses never sent); statuses in email_verification_cache."
    ),
)
def email_verifications(
    context: dg.AssetExecutionContext, postgres: PostgresResource, settings: SettingsResource, vendors: VendorsResource
) -> dg.MaterializeResult:
    return run_stage(context, postgres=postgres, settings=settings, vendors=vendors, name="email_verifications",
                     run=run_verify_stage)  # fmt: skip


ENRICHMENT_ASSETS = [crawled_sites, web_extractions, contacts, email_verifications]
__all__ = ["ENRICHMENT_ASSETS", "contacts", "crawled_sites", "email_verifications", "enrichment_resources",
           "web_extractions"]  # fmt: skip
