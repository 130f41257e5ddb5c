"""Benchmark: the odoo_sync stage alone, for N scored companies, against the Odoo simulator.

    python -m bench.odoo_sync [--companies N | --quick] [--profile demo|realistic] [--time-scale K]

Seeds one tenant's night as the stages before the sync leave it (targets, scores, a person
contact on two companies in three, a company mailbox on one in three, a lead for one in three),
then runs the real stage (`run_sync_stage`, as the application role) twice against an `OdooSim`:

    first_*    the first sync: every partner, contact and lead is created
    resync_*   every company redone against an Odoo that already has everything (nothing written)

Wall times are unscaled seconds (measured × K under `--time-scale K`), calls are the requests
in the simulator's own log. Target (issue 9): at most 1.5 Odoo calls per company on a first sync.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date

import psycopg

from bench.common import bench_database, emit_result, progress
from leadgen_core.db.pool import Database
from leadgen_core.leads.sync_stage import STAGE, SyncContext, SyncReport, run_sync_stage
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.sandbox.profile import SandboxProfile
from leadgen_core.settings import Settings
from leadgen_core.tenants import add_tenant, connect_odoo

FULL_COMPANIES = 1000
QUICK_COMPANIES = 100
DAY = date(2026, 11, 21)
ODOO_DB, ODOO_LOGIN, ODOO_KEY = "bench", "bench-bot", "bench-odoo-key"
SECRET_ENV = "ODOO_BENCH_KEY"
TARGET_CALLS_PER_COMPANY = 1.5

SEED_SQL = [
    """INSERT INTO companies (uen, name, website, content_hash, first_seen, last_seen)
       SELECT 'BN' || lpad(g::text, 7, '0') || 'K', 'Bench Company ' || g || ' Pte Ltd',
              'https://bench' || g || '.example', '\\x00', %(day)s, %(day)s
       FROM generate_series(1, %(n)s) g""",
    """INSERT INTO daily_targets (tenant_id, run_date, company_id, priority)
       SELECT %(tenant)s, %(day)s, company_id, company_id FROM companies""",
    """INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale,
                                rationale_source, run_id)
       SELECT %(tenant)s, %(day)s, company_id,
              CASE company_id %% 3 WHEN 0 THEN 0.8 WHEN 1 THEN 0.5 ELSE 0.2 END,
              CASE company_id %% 3 WHEN 0 THEN 'high' WHEN 1 THEN 'medium' ELSE 'low' END,
              '{}', 'A software company in the ICP, with a verified decision maker.', 'template', 'bench'
       FROM companies""",
    """INSERT INTO contacts (company_id, full_name, title, email, source)
       SELECT company_id, 'Person ' || company_id, CASE WHEN company_id %% 3 = 0 THEN 'CEO' ELSE 'Sales Manager' END,
              'person@bench' || company_id || '.example', 'crawl'
       FROM companies WHERE company_id %% 3 <> 2""",
    """INSERT INTO lead_emails (email, company_id, contact_id, source)
       SELECT email, company_id, contact_id, 'crawl' FROM contacts""",
    """INSERT INTO lead_emails (email, company_id, source)
       SELECT 'info@bench' || company_id || '.example', company_id, 'crawl' FROM companies WHERE company_id %% 3 = 0""",
    """INSERT INTO email_verification_cache (email, status) SELECT email, 'valid' FROM lead_emails""",
]


@dataclass(frozen=True)
class Pass:
    wall_s: float
    calls: int
    report: SyncReport


def seed(owner_dsn: str, *, companies: int, odoo_url: str) -> str:
    with psycopg.connect(owner_dsn) as conn:
        tenant = add_tenant(conn, "Bench Odoo").tenant_id
        connect_odoo(conn, tenant_id=tenant, base_url=odoo_url, db_name=ODOO_DB, protocol="jsonrpc",
                     login=ODOO_LOGIN, secret_env=SECRET_ENV)  # fmt: skip
        for sql in SEED_SQL:
            conn.execute(sql, {"tenant": tenant, "day": DAY, "n": companies})
    return tenant


def run_pass(db: Database, sim: OdooSim, *, tenant: str, settings: Settings, scale: float) -> Pass:
    sim.reset_log()
    ctx = SyncContext(tenant_id=tenant, day=DAY, settings=settings, tenant_conn=lambda: db.tenant_transaction(tenant),
                      environ={SECRET_ENV: ODOO_KEY}, progress=progress)  # fmt: skip
    started = time.perf_counter()
    report = run_sync_stage(ctx)
    wall = (time.perf_counter() - started) * scale
    if report.errors:
        raise SystemExit(f"the sync reported {report.errors} item errors")
    return Pass(round(wall, 2), len(sim.log), report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.odoo_sync", description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=FULL_COMPANIES)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_COMPANIES} companies")
    parser.add_argument("--profile", default="realistic", choices=["demo", "realistic"])
    parser.add_argument("--time-scale", type=float, default=1.0)
    opts = parser.parse_args(argv)
    n = QUICK_COMPANIES if opts.quick else opts.companies
    profile = SandboxProfile.parse(opts.profile, opts.time_scale)
    settings = Settings()
    with bench_database("leadgen_bench_odoo") as bdb, OdooSim(db=ODOO_DB, users={ODOO_LOGIN: ODOO_KEY},
                                                              profile=profile) as sim:  # fmt: skip
        tenant = seed(bdb.owner_dsn, companies=n, odoo_url=sim.base_url)
        progress(f"seeded {n} scored companies; Odoo {profile.name.value} x{profile.time_scale:g}")
        db = Database(bdb.app_dsn, max_size=4)
        db.open()
        try:
            first = run_pass(db, sim, tenant=tenant, settings=settings, scale=profile.time_scale)
            with psycopg.connect(bdb.owner_dsn) as conn:
                conn.execute("DELETE FROM company_stage_status WHERE stage = %s", (STAGE,))
            writes = sim.write_count
            resync = run_pass(db, sim, tenant=tenant, settings=settings, scale=profile.time_scale)
            if sim.write_count != writes:
                raise SystemExit("the unchanged re-sync wrote to Odoo")
        finally:
            db.close()
        counts = sim.counts()
    emit_result({
        "profile": profile.name.value, "time_scale": profile.time_scale, "companies": n,
        "chunk_size": settings.odoo_sync_chunk_size, "max_in_flight": settings.odoo_max_in_flight,
        "odoo_workers": sim.workers.size, "records": counts,
        "first_wall_s": first.wall_s, "first_calls": first.calls,
        "first_calls_per_company": round(first.calls / n, 3),
        "resync_wall_s": resync.wall_s, "resync_calls": resync.calls,
        "resync_calls_per_company": round(resync.calls / n, 3),
        "target_calls_per_company": TARGET_CALLS_PER_COMPANY,
        "meets_target": first.calls / n <= TARGET_CALLS_PER_COMPANY,
    })  # fmt: skip


if __name__ == "__main__":
    main()
