"""Re-executing a failed night from failure, as the UI's "Re-execute from failure" does.

Real: Postgres, the product's own `tenant_night_job` and resources (from the environment, as in a
run worker), Dagster's re-execution machinery on a persistent instance, and the sandbox
simulators. The tenant's Odoo is dead on the first run, so `odoo_sync` fails after every paid
stage succeeded; the re-execution runs only what failed and pays no vendor again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import dagster as dg
import psycopg
import pytest

from leadgen_core.sandbox.cluster import SandboxCluster
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry

DAY = date(2026, 11, 20)
PARTITION = f"{DAY.isoformat()}|alpha"
PAID = ("tavily", "lusha", "zerobounce", "openai")


def tenant_night_job() -> dg.JobDefinition:
    """The product's job, reconstructable by Dagster (module level, built from the definitions)."""
    from leadgen_dagster.definitions import defs

    return defs.resolve_job_def("tenant_night_job")


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxCluster]:
    with SandboxCluster(registry_rows=50, web_slow_delay_s=0.3, web_crawl_delay_s=0.2) as cluster:
        for name, value in cluster.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CRAWLER_DOMAIN_INTERVAL_S", "0.02")
        monkeypatch.setenv("CRAWLER_SITE_DEADLINE_S", "6")
        monkeypatch.setenv("CRAWLER_TIMEOUT_S", "2")
        yield cluster


def test_reexecution_from_failure_runs_only_what_failed_and_pays_nothing_again(
    clean_db: DbHandle, sandbox: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.setenv("LEADGEN_APP_DATABASE_URL", clean_db.app_dsn)
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "6")
    load_registry(clean_db.owner_dsn, rows=1500, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules={"industries": ["wholesale"]})
        # the tenant's Odoo is down: nothing listens on the discard port
        conn.execute("UPDATE odoo_connections SET base_url = 'http://127.0.0.1:9', secret_ref = 'env:ODOO_SANDBOX_KEY'")
    job = dg.reconstructable(tenant_night_job)
    with dg.instance_for_test() as instance:
        add_partitions(instance, "alpha")
        with dg.execute_job(job, instance=instance, tags={"dagster/partition": PARTITION}) as first:
            assert not first.success
            failed = {e.step_key for e in first.all_events if e.event_type_value == "STEP_FAILURE"}
            assert failed == {"odoo_sync"}
            # an unreachable Odoo is transient: the step retried itself (RetryPolicy) before failing
            retried = [e.step_key for e in first.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
            assert retried == ["odoo_sync", "odoo_sync"]
            first_run, first_tags = first.run_id, {"dagster/partition": first.dagster_run.tags["dagster/partition"]}
        billed = sandbox.billable_units()
        assert all(billed[v] > 0 for v in ("tavily", "openai", "zerobounce")), billed

        # the operator fixes the connection, then re-executes from failure
        with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
            conn.execute("UPDATE odoo_connections SET base_url = %s", (sandbox.odoo.base_url,))
        sandbox.reset_logs()
        options = dg.ReexecutionOptions.from_failure(first_run, instance)
        # the UI's re-execution keeps the parent's tags (its partition); the Python API takes them explicitly
        with dg.execute_job(job, instance=instance, reexecution_options=options, tags=first_tags) as again:
            assert again.success
            ran = {e.step_key for e in again.all_events if e.event_type_value == "STEP_SUCCESS"}
            assert "odoo_sync" in ran and not ran & {"crawled_sites", "web_extractions", "contacts", "lead_scores"}
            assert again.dagster_run.tags["dagster/partition"] == PARTITION
    assert {v: n for v, n in sandbox.billable_units().items() if v in PAID} == dict.fromkeys(PAID, 0)
    assert all(not sandbox.sims[v].log for v in PAID)  # not even a free request
    assert sandbox.odoo.counts()["res.partner"] >= 6
