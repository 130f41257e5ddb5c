"""The deployment-wide dry run (`VendorsResource(dry_run=True)`, no run tag) reaches every stage.

Real: Postgres (the app role, RLS in force), every night asset and the night's checks materialised
by Dagster (`dg.materialize`), the crawler, the vendor clients, the Spender, the Odoo clients.
Simulated: the websites, Tavily, Lusha, ZeroBounce, OpenAI and Odoo (the sandbox cluster's
loopback simulators, whose request logs, billing counters and Odoo store are what is checked),
and the registry (a small synthetic ACRA extract).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest

from leadgen_core.sandbox.cluster import ODOO_DB, SandboxCluster, sandbox_cluster
from leadgen_dagster.assets.crm import CRM_ASSETS
from leadgen_dagster.checks import build_night_checks
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry, resources
from tests.enrich_helpers import DAY, NIGHT, PAID, TECH, metadata, paid_requests, q, vendors

TARGET_CAP = 8
TENANT = "alpha"
WHOLE_NIGHT = [*NIGHT, *CRM_ASSETS]
CHECKS = build_night_checks(CRM_ASSETS[-1])

TENANT_TABLES_SQL = """
SELECT c.table_name FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
ORDER BY 1
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[SandboxCluster]:
    yield from sandbox_cluster(registry_rows=50, web_slow_delay_s=0.3, web_crawl_delay_s=0.2)


@pytest.fixture
def night(clean_db: DbHandle, cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    load_registry(clean_db.owner_dsn, rows=400, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, TENANT, rules=TECH)
        conn.execute("INSERT INTO tenant_budgets VALUES (%s, 'targets', %s)", (TENANT, TARGET_CAP))
        conn.execute(
            "UPDATE odoo_connections SET base_url = %s, db_name = %s, login = 'admin', "
            "secret_ref = 'env:ODOO_SANDBOX_KEY'",
            (cluster.odoo.base_url, ODOO_DB),
        )
    # The score stage's rationales go to OpenAI through the settings (the worker's environment).
    env = cluster.env()
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ODOO_SANDBOX_KEY"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("CRAWLER_DOMAIN_INTERVAL_S", "0.02")
    monkeypatch.setenv("CRAWLER_SITE_DEADLINE_S", "6")
    cluster.clear_faults()
    cluster.reset_logs()
    cluster.odoo.reset()
    with dg.instance_for_test() as instance:
        add_partitions(instance, TENANT)
        yield clean_db, instance


def run(db: DbHandle, instance: dg.DagsterInstance, cluster: SandboxCluster, assets: list[Any], *,
        dry_run: bool) -> dg.ExecuteInJobResult:  # fmt: skip
    return dg.materialize(
        [*assets, *(CHECKS if assets is WHOLE_NIGHT else [])],
        partition_key=f"{DAY.isoformat()}|{TENANT}",
        resources=resources(db.app_dsn, vendors=vendors(cluster, dry_run=dry_run)),
        instance=instance,
        raise_on_error=False,
    )


def tenant_tables(dsn: str) -> dict[str, str]:
    """Every tenant table's full contents, as a digest: any inserted, updated or deleted row shows."""
    with psycopg.connect(dsn) as conn:
        names = [str(r[0]) for r in conn.execute(TENANT_TABLES_SQL).fetchall()]
        return {
            name: str(
                conn.execute(
                    f"SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "  # noqa: S608
                    f"FROM {name} t"
                ).fetchone()[0]  # type: ignore[index]
            )
            for name in names
        }


def assert_paid_nothing(cluster: SandboxCluster) -> None:
    assert paid_requests(cluster) == dict.fromkeys(PAID, 0)
    assert cluster.billable_units() == dict.fromkeys(PAID, 0)
    assert cluster.odoo.write_count == 0 and cluster.odoo.counts().get("res.partner", 0) == 0


def test_a_dry_deployment_pays_nothing_writes_nothing_and_keeps_the_manifest(night, cluster) -> None:  # type: ignore[no-untyped-def]
    db, instance = night
    before = tenant_tables(db.owner_dsn)
    assert "daily_targets" in before and "lead_scores" in before and "odoo_sync_log" in before

    # A fresh date: the dry night forecasts the manifest it would select, and stores none of it.
    dry = run(db, instance, cluster, WHOLE_NIGHT, dry_run=True)
    assert dry.success
    assert metadata(dry, "daily_targets")["targets"] == TARGET_CAP
    assert metadata(dry, "crawled_sites")["dry_run"] is True
    assert metadata(dry, "lead_scores")["dry_run"] is True and metadata(dry, "odoo_sync")["dry_run"] is True
    assert metadata(dry, "contacts")["forecast_calls"].get("lusha", 0) > 0  # the stages did see the targets
    assert_paid_nothing(cluster)
    assert tenant_tables(db.owner_dsn) == before

    # A real night up to verification, then the deployment goes dry again: the scores, rationales
    # and Odoo writes that are due are forecast, not made, and the stored manifest keeps its run id.
    assert run(db, instance, cluster, NIGHT, dry_run=False).success
    manifest = q(db.owner_dsn, "SELECT company_id, priority, run_id FROM daily_targets ORDER BY priority")
    assert len(manifest) == TARGET_CAP
    cluster.reset_logs()
    before = tenant_tables(db.owner_dsn)
    dry = run(db, instance, cluster, WHOLE_NIGHT, dry_run=True)
    assert dry.success
    assert metadata(dry, "lead_scores")["forecast"]["calls"].get("openai", 0) >= 1  # due, and not paid
    assert_paid_nothing(cluster)
    assert tenant_tables(db.owner_dsn) == before
    assert q(db.owner_dsn, "SELECT company_id, priority, run_id FROM daily_targets ORDER BY priority") == manifest
