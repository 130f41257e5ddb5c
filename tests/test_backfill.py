"""A one-tenant backfill over three dates, launched through Dagster's backfill API, runs and completes.

Real: the code location loaded in a gRPC code server subprocess (as the webserver loads it), the
GraphQL mutation the UI's "Materialize → backfill" dialog sends (`launchPartitionBackfill` with
tenant×date partition keys), the backfill daemon's iteration (a private Dagster function: there is
no public way to drive it without running the daemon), runs launched by the instance's run
launcher in subprocesses, and Postgres. The registry is a synthetic snapshot loaded beforehand:
it is one current snapshot, so no registry run is part of the backfill.
"""

from __future__ import annotations

import logging
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry

DEFINITIONS = str(Path(__file__).resolve().parents[1] / "leadgen_dagster" / "definitions.py")
TECH = {"industries": ["software", "information technology"], "incorporation_year": {"min": 1990, "max": 2025}}
DATES = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]


def _drive_backfill(context, backfill_id: str, *, timeout_s: float = 300) -> dg.DagsterInstance:  # type: ignore[no-untyped-def]
    from dagster._core.execution.backfill import BulkActionStatus
    from dagster._daemon.backfill import execute_backfill_iteration

    instance = context.instance
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        list(execute_backfill_iteration(context.process_context, logging.getLogger("backfill")))
        backfill = instance.get_backfill(backfill_id)
        if backfill.status != BulkActionStatus.REQUESTED:
            return instance
        time.sleep(1)
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    states = [(r.tags.get("dagster/partition"), r.status.value) for r in runs]
    pytest.fail(f"backfill {backfill_id} still running after {timeout_s}s: runs {states}")


def test_a_backfill_for_one_tenant_runs_only_its_partitions_and_completes(clean_db: DbHandle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dagster._core.execution.backfill import BulkActionStatus

    load_registry(clean_db.owner_dsn, rows=1500, day=DATES[-1])
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules=TECH)
        add_tenant(conn, "beta", rules=TECH)
    monkeypatch.setenv("LEADGEN_APP_DATABASE_URL", clean_db.app_dsn)  # read by the code server's resources
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "20")
    # Runs launch straight away (no queue daemon here); the launcher starts each in a subprocess.
    coordinator = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": coordinator}) as instance:
        add_partitions(instance, "alpha", "beta")
        with define_out_of_process_context(DEFINITIONS, "defs", instance) as context:
            keys = [f"{d.isoformat()}|alpha" for d in DATES]  # what the UI sends for tenant=alpha, 3 dates
            result = execute_dagster_graphql(
                context,
                LAUNCH_PARTITION_BACKFILL_MUTATION,
                variables={
                    "backfillParams": {
                        "partitionNames": keys,
                        "assetSelection": [{"path": ["icp_candidates"]}, {"path": ["daily_targets"]}],
                    }
                },
            )
            launched = result.data["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]
            final = _drive_backfill(context, backfill_id).get_backfill(backfill_id)
            runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == keys  # alpha's 3 partitions, nothing of beta's
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]
    assert final.status == BulkActionStatus.COMPLETED_SUCCESS
    with psycopg.connect(clean_db.owner_dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, run_date, count(*) FROM daily_targets GROUP BY 1, 2 ORDER BY 2"
        ).fetchall()
    assert rows == [("alpha", d, 20) for d in DATES]
