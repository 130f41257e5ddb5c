"""The frame every tenant-night asset body runs in.

It parses and validates the partition, records the stage's start and end in `run_stage_stats`
(the SLA check's input), and turns counts and durations into metadata Dagster plots.

A dry run is decided in one place, `night_dry_run`: the run tag `leadgen/dry_run=true`, or the
deployment-wide `VendorsResource(dry_run=True)`. Every night asset and check takes it from there
(`Stage.dry_run`), so no stage can honour one switch and miss the other. A dry run records no
stage timings, so a forecast never overwrites the timings of the real night the SLA check reads.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg

from leadgen_core.db.catalog import table_columns
from leadgen_core.gc_tuning import tune_for_stages
from leadgen_core.night.stagestats import StageCounts, stage_finished, stage_started
from leadgen_dagster.partitions import parse_tenant_date
from leadgen_dagster.resources import PostgresResource
from leadgen_dagster.retries import last_attempt, permanent_failures
from leadgen_dagster.tags import is_dry_run, root_run_id, start_after_s
from leadgen_dagster.vendor_resources import VendorsResource

# Each stage's table: where `dagster/row_count` (the partition's items, one row each) and the column schema
# shown in the UI come from.
STAGE_TABLES = {
    "icp_candidates": "icp_candidates",
    "daily_targets": "daily_targets",
    "crawled_sites": "company_web_snapshots",
    "web_extractions": "company_extractions",
    "contacts": "contacts",
    "email_verifications": "email_verification_cache",
    "lead_scores": "lead_scores",
    "odoo_sync": "odoo_sync_log",
}
CODE_VERSION = "2026-12-04"  # bump when a stage's output for the same input changes


def metric_key(prefix: str, name: str) -> str:
    """`units_` + `tavily`, `degraded_` + `budget:tavily` → `degraded_budget_tavily`: one plottable key."""
    return prefix + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def numeric_metadata(prefix: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """One int metadata value per key, so Dagster plots each across partitions (a JSON value it cannot)."""
    return {metric_key(prefix, k): dg.MetadataValue.int(int(v)) for k, v in sorted(counts.items())}


def table_metadata(postgres: PostgresResource, *, table: str, row_count: int) -> dict[str, Any]:
    """Row count and column schema of TABLE, the table a stage writes, read from the catalog."""
    with postgres.shared(operation="table schema") as conn:
        cols = table_columns(conn, table)
    schema = dg.TableSchema(columns=[dg.TableColumn(name=c[0], type=c[1]) for c in cols])
    # Dagster's standard keys (TableMetadataSet): the UI shows them as the asset's row count and columns.
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/column_schema": dg.MetadataValue.table_schema(schema),
        "dagster/table_name": dg.MetadataValue.text(table),
    }


@dataclass
class Stage:
    tenant_id: str
    day: date
    name: str
    run_id: str
    dry_run: bool = False
    counts: StageCounts = field(default_factory=StageCounts)
    metadata: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def result(self) -> dg.MaterializeResult:
        seconds = time.monotonic() - self.started
        meta: dict[str, Any] = {
            "tenant": self.tenant_id,
            "date": self.day.isoformat(),
            "items": dg.MetadataValue.int(self.counts.items),
            "done": dg.MetadataValue.int(self.counts.done),
            "degraded": dg.MetadataValue.int(self.counts.degraded),
            "failed": dg.MetadataValue.int(self.counts.failed),
            "duration_s": dg.MetadataValue.float(round(seconds, 3)),
        }
        meta.update(self.metadata)
        return dg.MaterializeResult(metadata=meta)


def night_dry_run(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext, vendors: VendorsResource) -> bool:
    """The one dry-run switch: the run's `leadgen/dry_run` tag or the deployment's resource flag."""
    return vendors.dry_run or is_dry_run(context.run.tags)


def staggered_start(context: dg.AssetExecutionContext) -> float:
    """Wait the run's staggered start (the schedule's `leadgen/start_after_s`); the seconds waited.

    A re-execution (it has a parent run) starts at once: the stagger is for the night's first start.
    """
    wait = start_after_s(context.run.tags)
    if wait <= 0 or context.run.parent_run_id is not None:
        return 0.0
    context.log.info(f"staggered start: waiting {wait:g} s so tenants do not share the vendors in step")
    time.sleep(wait)
    return wait


@contextmanager
def night_stage(
    context: dg.AssetExecutionContext, postgres: PostgresResource, name: str, *, vendors: VendorsResource
) -> Iterator[Stage]:
    with permanent_failures(name):
        tenant_id, day = parse_tenant_date(context.partition_key)
        postgres.require_tenant(tenant_id)
    with last_attempt(context, f"{name} for tenant {tenant_id}"):  # the run's first line names the cause
        yield from _night_stage(context, postgres, name, tenant_id, day, vendors=vendors)


def _night_stage(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    name: str,
    tenant_id: str,
    day: date,
    *,
    vendors: VendorsResource,
) -> Iterator[Stage]:
    tune_for_stages()  # once per run worker: the collector skips what imports left (leadgen_core.gc_tuning)
    stage = Stage(tenant_id, day, name, context.run_id, dry_run=night_dry_run(context, vendors))
    record = not stage.dry_run
    if record:
        with postgres.tenant(tenant_id, operation=f"{name} start") as conn:
            stage_started(conn, tenant_id=tenant_id, run_date=day, stage=name, root_run_id=root_run_id(context.run))
    context.log.info(f"{name}: tenant {tenant_id}, date {day}{'' if record else ' (dry run)'}")
    with permanent_failures(f"{name} for tenant {tenant_id}"):
        yield stage
    if record:
        with postgres.tenant(tenant_id, operation=f"{name} finish") as conn:
            stage_finished(conn, tenant_id=tenant_id, run_date=day, stage=name, counts=stage.counts)
    if name in STAGE_TABLES:
        stage.metadata.update(table_metadata(postgres, table=STAGE_TABLES[name], row_count=stage.counts.items))
    context.log.info(
        f"{name} finished: {stage.counts.items} items, {stage.counts.done} done, "
        f"{stage.counts.degraded} degraded, {stage.counts.failed} failed"
    )
    if stage.counts.all_failed:
        # Outcomes are recorded (`failed` items are redone by the next materialisation); the
        # asset fails so the run, its sensors and its alerts say so.
        raise dg.Failure(
            description=(
                f"{name} for tenant {tenant_id}: all {stage.counts.items} items failed "
                "(their errors are in company_stage_status)"
            ),
            metadata={"items": stage.counts.items, "failed": stage.counts.failed},
        )
