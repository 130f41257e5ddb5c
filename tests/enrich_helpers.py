"""Helpers for the enrichment tests: the night's assets, resources pointed at the sandbox, queries."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg
import psycopg

from leadgen_core.sandbox.cluster import SandboxCluster
from leadgen_dagster.assets.enrichment import ENRICHMENT_ASSETS
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from leadgen_dagster.checks import build_night_checks
from leadgen_dagster.vendor_resources import VendorsResource
from tests.conftest import DbHandle
from tests.dagster_helpers import resources

DAY = date(2026, 3, 2)
TECH = {"industries": ["software", "information technology"]}
NIGHT = [icp_candidates, daily_targets, *ENRICHMENT_ASSETS]
ENRICH_STAGES = ("crawled_sites", "web_extractions", "contacts", "email_verifications")
PAID = ("tavily", "lusha", "zerobounce", "openai")
# Fast buckets: the documented rates would make a 20-company test night take minutes.
TEST_RATES = dict.fromkeys(PAID, 200.0)
NIGHT_CHECKS = build_night_checks(ENRICHMENT_ASSETS[-1])


def vendors(cluster: SandboxCluster, **overrides: Any) -> VendorsResource:
    env = cluster.env()
    fields: dict[str, Any] = {
        "tavily_base_url": env["TAVILY_BASE_URL"],
        "tavily_api_key": env["TAVILY_API_KEY"],
        "lusha_base_url": env["LUSHA_BASE_URL"],
        "lusha_api_key": env["LUSHA_API_KEY"],
        "zerobounce_base_url": env["ZEROBOUNCE_BASE_URL"],
        "zerobounce_api_key": env["ZEROBOUNCE_API_KEY"],
        "openai_base_url": env["OPENAI_BASE_URL"],
        "openai_api_key": env["OPENAI_API_KEY"],
        "sandbox_web_port": int(env["LEADGEN_SANDBOX_WEB_PORT"]),
        "timeout_s": 3.0,
        "max_attempts": 4,
        "rate_per_s": TEST_RATES,
    }
    fields.update(overrides)
    return VendorsResource(**fields)


def materialize(
    db: DbHandle,
    instance: dg.DagsterInstance,
    cluster: SandboxCluster,
    tenant: str,
    *,
    assets: list[Any] | None = None,
    tags: dict[str, str] | None = None,
    checks: bool = False,
    **vendor_overrides: Any,
) -> dg.ExecuteInJobResult:
    selected = list(assets or NIGHT)
    return dg.materialize(
        [*selected, *(NIGHT_CHECKS if checks else [])],
        partition_key=f"{DAY.isoformat()}|{tenant}",
        resources=resources(db.app_dsn, vendors=vendors(cluster, **vendor_overrides)),
        instance=instance,
        tags=tags or {},
        raise_on_error=False,
    )


def q(dsn: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def targets(dsn: str, tenant: str) -> list[int]:
    rows = q(dsn, "SELECT company_id FROM daily_targets WHERE tenant_id = %s AND run_date = %s ORDER BY priority",
             tenant, DAY)  # fmt: skip
    return [int(r[0]) for r in rows]


def statuses(dsn: str, tenant: str, stage: str) -> dict[int, tuple[str, str | None]]:
    rows = q(
        dsn,
        "SELECT company_id, status, reason FROM company_stage_status WHERE tenant_id = %s AND run_date = %s "
        "AND stage = %s",
        tenant, DAY, stage,
    )  # fmt: skip
    return {int(r[0]): (str(r[1]), r[2]) for r in rows}


def usage(dsn: str, tenant: str) -> dict[str, int]:
    """Units in the tenant's ledger per vendor, over every day (charged on the spending day, not DAY)."""
    rows = q(dsn, "SELECT vendor, sum(units) FROM vendor_usage WHERE tenant_id = %s GROUP BY vendor", tenant)
    return {str(v): int(u) for v, u in rows}


def metadata(result: dg.ExecuteInJobResult, asset: str) -> dict[str, Any]:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    raw = event.step_materialization_data.materialization.metadata
    return {k: getattr(v, "value", v) for k, v in raw.items()}


def paid_requests(cluster: SandboxCluster) -> dict[str, int]:
    return {name: len(cluster.sims[name].log) for name in PAID}
