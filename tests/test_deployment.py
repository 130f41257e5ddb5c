"""The deployment Dagster users run: a gRPC code server, the webserver and the daemon, no `dagster dev`.

Real: three separate processes started exactly as deploy/README.md says (`dagster code-server
start`, `dagster-webserver -w deploy/workspace.yaml`, `dagster-daemon run -w deploy/workspace.yaml`),
Dagster's storage in Postgres (the instance `leadgen instance render` writes), a tenant night
launched through the webserver's GraphQL API, dequeued by the daemon under the run queue's limits,
and run by a run worker the code server starts, against the sandbox simulators. The Helm values
are checked against the same rendered instance: queue, tag limits, retries, monitoring, storage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest
import yaml

from leadgen_core.db.dsn import sqlalchemy_url
from leadgen_core.sandbox.cluster import SandboxCluster
from tests.conftest import ROOT, DbHandle, add_tenant
from tests.dagster_helpers import load_registry

DAY = date(2026, 11, 20)
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 420
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def graphql(url: str, query: str, variables: dict[str, object] | None = None) -> dict:  # type: ignore[type-arg]
    answer = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
STATUS = "query S($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"
LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


@pytest.fixture
def deployment(clean_db: DbHandle, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The three processes, on free ports, against the test database and a sandbox."""
    with SandboxCluster(registry_rows=50, web_slow_delay_s=0.3, web_crawl_delay_s=0.2) as cluster:
        home = tmp_path / "dagster_home"
        code_port, web_port = free_port(), free_port()
        env = {
            **os.environ,
            **cluster.env(),
            "LEADGEN_DATABASE_URL": clean_db.owner_dsn,
            "LEADGEN_APP_DATABASE_URL": clean_db.app_dsn,
            "LEADGEN_DAGSTER_PG_URL": sqlalchemy_url(clean_db.owner_dsn, search_path="dagster"),
            "DAGSTER_HOME": str(home),
            "LEADGEN_CODE_SERVER_HOST": "127.0.0.1",
            "LEADGEN_CODE_SERVER_PORT": str(code_port),
            "SCHED_DAILY_CAP_PER_TENANT": "4",
            "CRAWLER_DOMAIN_INTERVAL_S": "0.02",
            "CRAWLER_SITE_DEADLINE_S": "6",
            "CRAWLER_TIMEOUT_S": "2",
            "SCHED_ENABLED": "false",
        }
        subprocess.run([str(BIN / "leadgen"), "instance", "render"], env=env, check=True, capture_output=True)
        workspace = str(ROOT / "deploy" / "workspace.yaml")
        commands = [
            [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
             "-m", "leadgen_dagster.definitions", "-a", "defs", "--location-name", "leadgen"],
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)],
            [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        ]  # fmt: skip
        logs = [(tmp_path / f"proc{i}.log").open("wb") for i in range(len(commands))]
        procs = [
            subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            for cmd, log in zip(commands, logs, strict=True)
        ]
        try:
            url = f"http://127.0.0.1:{web_port}/graphql"
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                dead = [p.args for p in procs if p.poll() is not None]
                assert not dead, f"{dead} exited: " + (tmp_path / "proc0.log").read_text()[-2000:]
                try:
                    entries = graphql(url, LOCATION)["workspaceOrError"]["locationEntries"]
                    if entries and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation":
                        break
                except (httpx.HTTPError, KeyError, TypeError):
                    pass
                assert time.monotonic() < deadline, "the webserver never loaded the code location"
                time.sleep(2)
            yield url, env
        finally:
            stop(procs)
            for log in logs:
                log.close()


def launch(url: str, tenant: str) -> str:
    params = {
        "selector": {"repositoryLocationName": "leadgen", "repositoryName": "__repository__",
                     "jobName": "tenant_night_job"},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": f"{DAY}|{tenant}"},
                                       {"key": "leadgen/tenant", "value": tenant}]},
    }  # fmt: skip
    result = graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return str(result["run"]["runId"])


def test_three_processes_run_a_tenant_night_through_the_queue(clean_db: DbHandle, deployment) -> None:  # type: ignore[no-untyped-def]
    url, env = deployment
    load_registry(clean_db.owner_dsn, rows=1500, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules={"industries": ["wholesale"]})
        conn.execute("UPDATE odoo_connections SET base_url = %s", (env["ODOO_SANDBOX_URL"],))
    os.environ["DAGSTER_HOME"], saved = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    os.environ["LEADGEN_DAGSTER_PG_URL"] = env["LEADGEN_DAGSTER_PG_URL"]
    try:
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("tenants", ["alpha"])
    finally:
        os.environ.pop("LEADGEN_DAGSTER_PG_URL", None)
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved
    # two nights of one tenant: the queue's tag limit (1 per tenant) lets only one run at a time
    first, second = launch(url, "alpha"), launch(url, "alpha")
    seen: dict[str, list[str]] = {first: [], second: []}
    peak_connections = 0  # the capacity model's input (README): connections to the database, all processes
    watcher = psycopg.connect(clean_db.owner_dsn, autocommit=True)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not all(s and s[-1] in TERMINAL for s in seen.values()):
        assert time.monotonic() < deadline, seen
        statuses = {rid: graphql(url, STATUS, {"id": rid})["runOrError"]["status"] for rid in seen}
        for rid, status in statuses.items():
            if not seen[rid] or seen[rid][-1] != status:
                seen[rid].append(status)
        assert list(statuses.values()).count("STARTED") <= 1, statuses  # never two nights of alpha at once
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        peak_connections = max(peak_connections, int(row[0]) if row else 0)
        time.sleep(1)
    watcher.close()
    print(f"peak connections, webserver + daemon + code server + one run worker: {peak_connections}")
    # LEADGEN_POOL_MAX_SIZE (10) for the run's pool, plus Dagster's storage (NullPool: one per operation)
    assert 0 < peak_connections <= 10 + 20, peak_connections
    assert seen[first][-1] == "SUCCESS" and seen[second][-1] == "SUCCESS", seen
    assert "QUEUED" in seen[first] + seen[second]  # they went through the daemon's queue
    with psycopg.connect(clean_db.owner_dsn) as conn:
        synced = conn.execute("SELECT count(*) FROM odoo_sync_log WHERE tenant_id = 'alpha'").fetchone()
    assert synced is not None and synced[0] > 0


def test_helm_values_mirror_the_rendered_instance(clean_db: DbHandle, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What the chart would render into the instance is what `leadgen instance render` writes, and
    the user deployment serves the location deploy/workspace.yaml names (the test above loads it)."""
    from leadgen_core.settings import Settings
    from leadgen_dagster.instance import render_instance_yaml

    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    rendered = yaml.safe_load(render_instance_yaml(Settings()))
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = rendered["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert [(t["key"], t.get("value"), t["limit"]) for t in queue["tagConcurrencyLimits"]] == [
        (t["key"], t.get("value"), t["limit"]) for t in runs["tag_concurrency_limits"]
    ]
    retries, monitoring = values["dagsterDaemon"]["runRetries"], values["dagsterDaemon"]["runMonitoring"]
    assert retries == {
        "enabled": rendered["run_retries"]["enabled"],
        "maxRetries": rendered["run_retries"]["max_retries"],
        "retryOnAssetOrOpFailure": rendered["run_retries"]["retry_on_asset_or_op_failure"],
    }
    assert monitoring["startTimeoutSeconds"] == rendered["run_monitoring"]["start_timeout_seconds"]
    assert monitoring["maxRuntimeSeconds"] == rendered["run_monitoring"]["max_runtime_seconds"]
    sched = values["scheduler"]["config"]["dagsterDaemonScheduler"]
    assert sched["maxCatchupRuns"] == rendered["scheduler"]["config"]["max_catchup_runs"]
    assert values["pythonLogs"]["pythonLogLevel"] == rendered["python_logs"]["python_log_level"]
    assert values["pythonLogs"]["managedPythonLoggers"] == rendered["python_logs"]["managed_python_loggers"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "postgres" in rendered["storage"] and values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlParams"]["options"] == "-c search_path=dagster"
    (deployment_,) = values["dagster-user-deployments"]["deployments"]
    assert deployment_["codeServerArgs"][-1] == "leadgen"  # the location name the workspace names
    assert "postgresqlPassword" not in values["postgresql"]  # the password lives in a Secret
    workspace = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["location_name"] == "leadgen"
