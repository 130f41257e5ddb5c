"""`kill -9` a night in the middle of each paid stage and of odoo_sync, then run it again.

Real: the product's `tenant_night_job` in a separate process (`tests.crash_worker`, as a run
worker), SIGKILL delivered while the stage's vendor has a request in flight (the simulators answer
slowly), Postgres, and the sandbox simulators' own billable counters as the vendors' invoices.
After the second run the night must look like a clean one:

- the ledger (`vendor_usage`) is within one in-flight request per worker of what each vendor billed;
- no company is degraded for budget (the caps are far above a 12-company night);
- no Odoo record is duplicated;
- every target ends every stage terminal (done, degraded or skipped; never failed or missing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from leadgen_core.clock import today_sg
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.cluster import SandboxCluster
from tests.conftest import ROOT, DbHandle, add_tenant
from tests.dagster_helpers import load_registry

WORKERS = 4
TARGETS = 12
KILL_TIMEOUT_S = 240
RUN_TIMEOUT_S = 300
PAID = ("tavily", "lusha", "zerobounce", "openai")
STAGES = ("crawled_sites", "web_extractions", "contacts", "email_verifications", "lead_scores", "odoo_sync")
# Which simulator's requests show that a stage is paying (or writing) right now.
STAGE_VENDOR = {
    "crawled_sites": "tavily",
    "web_extractions": "openai",
    "contacts": "lusha",
    "email_verifications": "zerobounce",
    "lead_scores": "openai",
    "odoo_sync": "odoo",
}


@pytest.fixture
def sandbox() -> Iterator[SandboxCluster]:
    slow = FaultConfig(latency_ms=400, latency_jitter_ms=100)  # requests stay in flight long enough to be cut
    faults = {v: slow for v in (*PAID, "odoo")}
    with SandboxCluster(registry_rows=50, web_slow_delay_s=0.3, web_crawl_delay_s=0.2, faults=faults) as cluster:
        yield cluster


def night_env(db: DbHandle, cluster: SandboxCluster, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **cluster.env(),
        "LEADGEN_DATABASE_URL": db.owner_dsn,
        "LEADGEN_APP_DATABASE_URL": db.app_dsn,
        "DAGSTER_HOME": str(home),
        "SCHED_DAILY_CAP_PER_TENANT": str(TARGETS),
        "SCHED_COMPANY_CONCURRENCY": str(WORKERS),
        "ZEROBOUNCE_IN_FLIGHT": str(WORKERS),  # single validations in flight: the same WORKERS
        "CRAWLER_DOMAIN_INTERVAL_S": "0.02",
        "CRAWLER_SITE_DEADLINE_S": "6",
        "CRAWLER_TIMEOUT_S": "2",
    }


def start_night(env: dict[str, str], partition: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", partition],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stage_started(db: DbHandle, stage: str) -> bool:
    with psycopg.connect(db.owner_dsn) as conn:
        row = conn.execute(
            "SELECT 1 FROM run_stage_stats WHERE stage = %s AND finished_at IS NULL", (stage,)
        ).fetchone()
    return row is not None


def kill_inside(
    proc: subprocess.Popen[bytes], db: DbHandle, stage: str, requests: Callable[[], int], log: Path
) -> None:
    """SIGKILL PROC once STAGE is running and has sent its vendor a request since it started."""
    baseline: int | None = None
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while True:
        assert proc.poll() is None, f"the night ended before {stage} paid anything:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{stage} never started paying"
        if baseline is None and stage_started(db, stage):
            baseline = requests()
        elif baseline is not None and requests() > baseline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return
        time.sleep(0.02)


def vendor_requests(cluster: SandboxCluster, vendor: str) -> Callable[[], int]:
    sim = cluster.sims[vendor]
    if vendor == "odoo":
        return lambda: cluster.odoo.write_count
    return lambda: len(sim.log)


def ledger(db: DbHandle, tenant: str) -> dict[str, int]:
    with psycopg.connect(db.owner_dsn) as conn:
        rows = conn.execute(
            "SELECT vendor, sum(units) FROM vendor_usage WHERE tenant_id = %s GROUP BY vendor", (tenant,)
        ).fetchall()
    return {v: int(u) for v, u in rows}


@pytest.mark.parametrize("stage", STAGES)
def test_a_night_killed_inside_a_stage_resumes_without_paying_twice(
    clean_db: DbHandle, sandbox: SandboxCluster, tmp_path: Path, stage: str
) -> None:
    day = today_sg()
    load_registry(clean_db.owner_dsn, rows=1500, day=day)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules={"industries": ["wholesale"]})
        conn.execute("UPDATE odoo_connections SET base_url = %s", (sandbox.odoo.base_url,))
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = night_env(clean_db, sandbox, home)
    partition = f"{day.isoformat()}|alpha"
    log = tmp_path / "night.log"

    first = start_night(env, partition, log)
    try:
        kill_inside(first, clean_db, stage, vendor_requests(sandbox, STAGE_VENDOR[stage]), log)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    again = start_night(env, partition, log)
    assert again.wait(timeout=RUN_TIMEOUT_S) == 0, log.read_text()[-4000:]

    billed = sandbox.billable_units()
    booked = ledger(clean_db, "alpha")
    for vendor in PAID:
        per_request = max((r.billable_units for r in sandbox.sims[vendor].log), default=0)
        slack = WORKERS * per_request  # at most one in-flight request per worker was cut off
        assert abs(booked.get(vendor, 0) - billed[vendor]) <= slack, (vendor, booked, billed, slack)
    with psycopg.connect(clean_db.owner_dsn) as conn:
        targets = [r[0] for r in conn.execute("SELECT company_id FROM daily_targets").fetchall()]
        statuses = conn.execute(
            "SELECT stage, company_id, status, reason FROM company_stage_status WHERE tenant_id = 'alpha'"
        ).fetchall()
    assert len(targets) == TARGETS
    budget = [s for s in statuses if (s[3] or "").startswith("budget:")]
    assert budget == [], budget
    assert not [s for s in statuses if s[2] == "failed"], statuses
    done = {(s[0], s[1]) for s in statuses}
    missing = [(st, c) for st in STAGES if st != "odoo_sync" for c in targets if (st, c) not in done]
    assert missing == [], missing
    partners = sandbox.odoo.records("res.partner")
    companies = [p.get("company_registry") or p.get("ref") for p in partners if p.get("is_company")]
    assert len(companies) == len(set(companies)), "a company partner was created twice"
    emails = [p["email"] for p in partners if not p.get("is_company") and p.get("email")]
    assert len(emails) == len(set(emails)), "a contact partner was created twice"
    keys = [lead.get("x_leadgen_key") for lead in sandbox.odoo.records("crm.lead")]
    assert len(keys) == len(set(keys)), "a lead was created twice"
