"""Benchmark: the nightly target selection for one tenant over a large registry.

    python -m bench.target_selection [--companies N | --quick] [--runs R]

Builds N companies by COPY straight into `companies` (real SSIC 2025 sub-classes, weighted toward
software, wholesale, logistics, manufacturing and F&B as the registry is), gives the tenant a few
thousand contacts, lead scores and suppressions (placed among the candidates that would otherwise
rank first, so the priority terms and exclusions really change the answer), sets ICP rules with
common industries, runs refresh_candidates once, and then times `select_targets` (cap 1000) R times
as the application role, each in its own tenant transaction (RLS in force). Target: p95 <= 200 ms.

The selection reads the priority keys that refresh_candidates stores on each candidate (sql/007);
the result also says whether it picked the same companies, in the same order, as REFERENCE_SQL,
which computes those keys live from lead_scores, contacts and companies.
"""

from __future__ import annotations

import argparse
import random
from bisect import bisect
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from itertools import accumulate

import psycopg

from bench.common import bench_database, emit_result, percentile, progress, server_facts, timed
from leadgen_core.acra.ssic import subclasses
from leadgen_core.db.pool import Database
from leadgen_core.icp.candidates import refresh_candidates, save_rules
from leadgen_core.icp.resolve import resolve_industries
from leadgen_core.icp.rules import parse_rules
from leadgen_core.night.targets import ELIGIBLE_CANDIDATES_SQL, SELECT_TARGETS_SQL, select_targets, target_ids

FULL_COMPANIES = 1_000_000
QUICK_COMPANIES = 100_000
MIN_RUNS = 30
MAX_RUNS = 1000
TENANT = "bench-tenant"
RUN_DATE = date(2026, 11, 22)
LATEST_SNAPSHOT = date(2026, 11, 21)
CAP = 1000
P95_TARGET_MS = 200.0
INDUSTRIES = ("technology", "wholesale")
COPY_COMPANIES_SQL = """
COPY companies (uen, name, website_domain, industry_norm, industry_code, secondary_ssic_code, incorporation_year,
                employees_est, entity_status, is_live, postal_code, address, content_hash, first_seen, last_seen)
FROM STDIN
"""
# (division prefixes, weight): trade, software, logistics, manufacturing, F&B and professional services lead.
DIVISION_WEIGHTS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("62", "63"), 10), (("46",), 18), (("49", "52"), 8), (tuple(f"{d}" for d in range(10, 34)), 10),
    (("56",), 8), (("41", "42", "43"), 6), (("69", "70", "71", "73", "74"), 10), (("64", "66", "68"), 6),
    (("47",), 6), ((), 18),  # () = any sub-class
)  # fmt: skip
LIVE_STATUSES = (("Live Company", 55), ("Live", 25), ("Struck Off", 10), ("Cancelled", 6), ("Ceased Registration", 4))
STREETS = ("ANSON ROAD", "UBI AVENUE 1", "TAI SENG STREET", "KALLANG AVENUE", "JURONG EAST STREET 21", "CECIL STREET")


def _weighted_pools() -> tuple[list[list[tuple[str, str]]], list[float]]:
    entries = [(e.code, e.title.upper()) for e in subclasses()]
    pools = [[e for e in entries if not prefixes or e[0].startswith(prefixes)] for prefixes, _ in DIVISION_WEIGHTS]
    total = sum(w for _, w in DIVISION_WEIGHTS)
    return pools, [c / total for c in accumulate(w for _, w in DIVISION_WEIGHTS)]


def company_rows(n: int, seed: int) -> Iterator[tuple[object, ...]]:
    """N companies as COPY tuples, deterministic for a seed."""
    rng = random.Random(seed)
    r = rng.random
    pools, cum = _weighted_pools()
    statuses = [s for s, _ in LIVE_STATUSES]
    status_cum = list(accumulate(w / 100 for _, w in LIVE_STATUSES))
    recent = [LATEST_SNAPSHOT - timedelta(days=d) for d in range(120)]
    for i in range(n):
        pool = pools[min(bisect(cum, r()), len(pools) - 1)]
        code, title = pool[int(r() * len(pool))]
        second = None
        if r() < 0.35:
            other = pools[min(bisect(cum, r()), len(pools) - 1)]
            second = other[int(r() * len(other))][0]
            second = None if second == code else second
        status = statuses[min(bisect(status_cum, r()), len(statuses) - 1)]
        year = 2025 - int(60 * r() ** 2.2)
        # Most companies were in last night's snapshot; some dropped out over the last months.
        last_seen = LATEST_SNAPSHOT if r() < 0.85 else recent[int(r() * len(recent))]
        first_seen = min(last_seen, LATEST_SNAPSHOT - timedelta(days=int(r() * 900)))
        name = f"BENCH {i:07d} {title[:40]} PTE. LTD."
        yield (
            f"{10_000_000 + i:08d}{'ABCDEFGHJKLMNPQRSTUVWXZ'[i % 23]}",
            name,
            f"bench{i}.com.sg" if r() < 0.4 else None,
            title,
            code,
            second,
            year,
            None if r() < 0.9 else int(1 + 200 * r() ** 3),
            status,
            status.startswith("Live"),
            f"{int(r() * 82) + 1:02d}{int(r() * 10000):04d}",
            f"{int(r() * 900) + 1} {STREETS[i % len(STREETS)]}",
            rng.randbytes(16),
            first_seen,
            last_seen,
        )


def _count(conn: psycopg.Connection, sql: str, params: Mapping[str, object] | None = None) -> int:
    row = conn.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


# Tenant history placed where it matters: half on the candidates that lead by (last_seen, company_id)
# without the priority terms, half spread at random over the candidates. setseed() keeps it repeatable.
PICK_SQL = """
CREATE TEMP TABLE {name} ON COMMIT DROP AS
SELECT company_id FROM (
    (SELECT c.company_id FROM companies c
     WHERE c.is_live AND (c.industry_code = ANY(%(codes)s) OR c.secondary_ssic_code = ANY(%(codes)s))
     ORDER BY c.last_seen DESC, c.company_id LIMIT %(half)s OFFSET %(offset)s)
    UNION
    (SELECT c.company_id FROM companies c
     WHERE c.is_live AND (c.industry_code = ANY(%(codes)s) OR c.secondary_ssic_code = ANY(%(codes)s))
     ORDER BY random() LIMIT %(half)s)
) picked
"""


def seed_tenant_history(
    db: Database, codes: list[str], *, scored: int, contacted: int, suppressed: int, seed: int
) -> dict[str, int]:
    """Scores, contacts, lead emails and suppressions for the tenant, as the application role."""
    with db.tenant_transaction(TENANT, operation="bench tenant history") as conn:
        conn.execute("SELECT setseed(%s)", (seed % 1000 / 1000.0,))
        conn.execute(PICK_SQL.format(name="pick_scored"), {"codes": codes, "half": scored // 2, "offset": 0})
        conn.execute(
            PICK_SQL.format(name="pick_contacted"),
            {"codes": codes, "half": contacted // 2, "offset": scored // 4},  # overlaps the scored ones in part
        )
        # 1 to 3 nights of scores per scored company.
        conn.execute(
            """
            INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale,
                                     rationale_source)
            SELECT %(tenant)s, %(day)s::date - n, p.company_id, s.score,
                   CASE WHEN s.score >= 0.66 THEN 'high' WHEN s.score >= 0.33 THEN 'medium' ELSE 'low' END,
                   '{}'::jsonb, 'bench', 'template'
            FROM pick_scored p
            CROSS JOIN LATERAL generate_series(1, 1 + mod(p.company_id, 3)::int) n
            CROSS JOIN LATERAL (SELECT mod(p.company_id * 7919 + n, 1000) / 1000.0 AS score) s
            """,
            {"tenant": TENANT, "day": RUN_DATE},
        )
        # 1 to 3 contacts per contacted company, each with a lead email, found on earlier nights.
        conn.execute(
            """
            INSERT INTO contacts (company_id, full_name, title, email, source, created_at)
            SELECT p.company_id, 'Contact ' || n, 'Director', 'c' || n || '.' || p.company_id || '@bench.example',
                   'lusha', %(day)s::date - n
            FROM pick_contacted p, generate_series(1, 1 + mod(p.company_id, 3)::int) n
            """,
            {"day": RUN_DATE},
        )
        conn.execute(
            """
            INSERT INTO lead_emails (email, company_id, contact_id, source)
            SELECT lower(k.email), k.company_id, k.contact_id, 'lusha'
            FROM contacts k JOIN pick_contacted p USING (company_id)
            """
        )
        # Suppressions among the leading candidates: half by domain, half by one known email.
        conn.execute(
            """
            INSERT INTO suppression_emails (tenant_id, value, kind, reason)
            SELECT %(tenant)s, c.website_domain, 'domain', 'bench'
            FROM companies c
            WHERE c.is_live AND c.website_domain IS NOT NULL
              AND (c.industry_code = ANY(%(codes)s) OR c.secondary_ssic_code = ANY(%(codes)s))
            ORDER BY c.last_seen DESC, c.company_id LIMIT %(half)s
            """,
            {"tenant": TENANT, "codes": codes, "half": suppressed // 2},
        )
        conn.execute(
            """
            INSERT INTO suppression_emails (tenant_id, value, kind, reason)
            SELECT %(tenant)s, le.email, 'email', 'bench' FROM lead_emails le
            ORDER BY le.email LIMIT %(half)s
            ON CONFLICT DO NOTHING
            """,
            {"tenant": TENANT, "half": suppressed // 2},
        )
        return {
            "lead_scores": _count(conn, "SELECT count(*) FROM lead_scores"),
            "scored_companies": _count(conn, "SELECT count(DISTINCT company_id) FROM lead_scores"),
            "contacts": _count(conn, "SELECT count(*) FROM contacts"),
            "contacted_companies": _count(conn, "SELECT count(DISTINCT company_id) FROM contacts"),
            "suppressions": _count(conn, "SELECT count(*) FROM suppression_emails"),
        }


# The priority computed live from the tenant's history, as selection did before sql/007 stored it on
# each candidate, with the product's "as of the night's start" reading (scores of earlier dates,
# contacts found before the night's Singapore day): the stored keys must pick the same companies
# in the same order.
REFERENCE_SQL = f"""
SELECT ic.company_id
{ELIGIBLE_CANDIDATES_SQL}
ORDER BY EXISTS (SELECT 1 FROM lead_scores s
                 WHERE s.tenant_id = %(tenant)s AND s.company_id = c.company_id AND s.run_date < %(run_date)s),
         EXISTS (SELECT 1 FROM contacts k
                 WHERE k.company_id = c.company_id
                   AND k.created_at < (%(run_date)s::date)::timestamp AT TIME ZONE 'Asia/Singapore'),
         c.last_seen DESC, c.company_id
LIMIT %(cap)s
"""  # noqa: S608 - the product's constant fragment, values are bound


def time_selection(db: Database, runs: int) -> tuple[list[float], int, list[int]]:
    """(latencies in ms of `runs` timed select_targets transactions after one warm-up, rows selected, the ids)."""
    latencies: list[float] = []
    selected = 0
    for i in range(runs + 1):  # run 0 warms the caches and is not counted
        with timed() as t, db.tenant_transaction(TENANT, operation="bench select_targets") as conn:
            selected = select_targets(
                conn, tenant_id=TENANT, run_date=RUN_DATE, default_cap=CAP, run_id=f"b{i}"
            ).selected
        if i:
            latencies.append(t[0] * 1000)
        if i % 10 == 0 or i == runs:
            progress(f"  select_targets run {i}/{runs}: {t[0] * 1000:.1f} ms, {selected} selected")
    with db.tenant_transaction(TENANT, operation="bench ids") as conn:
        ids = target_ids(conn, tenant_id=TENANT, run_date=RUN_DATE)
    return latencies, selected, ids


def reference_ids(db: Database) -> list[int]:
    """The targets REFERENCE_SQL picks (priority computed live), in priority order."""
    with db.tenant_transaction(TENANT, operation="bench reference") as conn:
        rows = conn.execute(REFERENCE_SQL, {"tenant": TENANT, "run_date": RUN_DATE, "cap": CAP}).fetchall()
    return [int(r[0]) for r in rows]


def explain(db: Database) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of SELECT_TARGETS_SQL as select_targets runs it (jit off), rolled back."""
    lines: list[str] = []
    params = {"tenant": TENANT, "run_date": RUN_DATE, "run_id": "bench-explain", "cap": CAP}
    with db.tenant_transaction(TENANT, operation="bench explain") as conn:
        conn.execute("DELETE FROM daily_targets WHERE tenant_id = %s AND run_date = %s", (TENANT, RUN_DATE))
        conn.execute("SET LOCAL jit = off")
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + SELECT_TARGETS_SQL, params).fetchall()
        lines.extend(str(r[0]) for r in rows)
        raise psycopg.Rollback()
    return "\n".join(lines)


def run(n: int, *, runs: int, seed: int, show_plan: bool) -> dict[str, object]:
    with bench_database() as bdb, psycopg.connect(bdb.owner_dsn, autocommit=True) as owner:
        facts = server_facts(owner)
        progress(f"server {facts['server_version']} settings {facts['settings']}")
        progress(f"companies: COPY {n:,} rows ...")
        with timed() as t_copy, owner.transaction(), owner.cursor().copy(COPY_COMPANIES_SQL) as cp:
            for i, row in enumerate(company_rows(n, seed)):
                cp.write_row(row)
                if (i + 1) % 250_000 == 0:
                    progress(f"  {i + 1:,} companies written")
        progress(f"companies: {n:,} in {t_copy[0]:.1f}s")
        owner.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, %s)", (TENANT, "Bench Tenant"))

        db = Database(bdb.app_dsn, min_size=1, max_size=2, name="leadgen-bench")
        with db:
            rules = parse_rules({"industries": list(INDUSTRIES)})
            with db.tenant_transaction(TENANT, operation="bench icp rules") as conn:
                save_rules(conn, TENANT, rules)
                codes = list(resolve_industries(conn, rules).codes)
            progress(f"icp rules {list(INDUSTRIES)} resolve to {len(codes)} SSIC sub-classes")
            history = seed_tenant_history(db, codes, scored=3000, contacted=2500, suppressed=200, seed=seed)
            progress(f"tenant history: {history}")
            for table in ("companies", "contacts", "lead_emails", "lead_scores", "suppression_emails"):
                owner.execute(f"VACUUM ANALYZE {table}")  # noqa: S608 - constant table names

            with timed() as t_cand, db.tenant_transaction(TENANT, operation="bench candidates") as conn:
                cand = refresh_candidates(conn, tenant_id=TENANT, run_date=RUN_DATE)
            progress(f"refresh_candidates: {cand.candidates:,} candidates in {t_cand[0]:.2f}s")
            owner.execute("VACUUM ANALYZE icp_candidates")  # steady state: last night's statistics exist
            owner.execute("CHECKPOINT")

            latencies, selected, ids = time_selection(db, runs)
            same_as_reference = reference_ids(db) == ids
            with db.tenant_transaction(TENANT, operation="bench check") as conn:
                with_history = _count(
                    conn,
                    """
                    SELECT count(*) FROM daily_targets t WHERE t.tenant_id = %(t)s AND t.run_date = %(d)s
                      AND (EXISTS (SELECT 1 FROM lead_scores s
                                   WHERE s.tenant_id = %(t)s AND s.company_id = t.company_id)
                           OR EXISTS (SELECT 1 FROM contacts k WHERE k.company_id = t.company_id))
                    """,
                    {"t": TENANT, "d": RUN_DATE},
                )
                # How many of the 1000 that recency alone would pick the priority terms push down.
                displaced = _count(
                    conn,
                    """
                    SELECT count(*) FROM (
                        SELECT ic.company_id FROM icp_candidates ic JOIN companies c USING (company_id)
                        WHERE ic.tenant_id = %(t)s AND ic.run_date = %(d)s
                        ORDER BY c.last_seen DESC, c.company_id LIMIT %(cap)s
                    ) top
                    WHERE EXISTS (SELECT 1 FROM lead_scores s
                                  WHERE s.tenant_id = %(t)s AND s.company_id = top.company_id)
                       OR EXISTS (SELECT 1 FROM contacts k WHERE k.company_id = top.company_id)
                    """,
                    {"t": TENANT, "d": RUN_DATE, "cap": CAP},
                )
            if show_plan:
                progress("EXPLAIN (ANALYZE, BUFFERS) of select_targets (rolled back):\n" + explain(db))
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "companies": n,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "candidates": cand.candidates,
        "runs": len(latencies),
        "max_ms": round(max(latencies), 1),
        "min_ms": round(min(latencies), 1),
        "selected": selected,
        "selected_with_score_or_contacts": with_history,
        "recency_top_with_score_or_contacts": displaced,
        "same_targets_as_live_priority": same_as_reference,
        "target_met": p95 <= P95_TARGET_MS,
        "refresh_candidates_s": round(t_cand[0], 2),
        "companies_copy_s": round(t_copy[0], 1),
        "history": history,
        "server": bdb.kind,
        "server_version": facts["server_version"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.target_selection", description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=FULL_COMPANIES, help=f"default {FULL_COMPANIES:,}")
    parser.add_argument("--quick", action="store_true", help=f"small run: {QUICK_COMPANIES:,} companies")
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help=f"timed runs, {MIN_RUNS}..{MAX_RUNS}")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the selection")
    args = parser.parse_args(argv)
    if not MIN_RUNS <= args.runs <= MAX_RUNS:
        parser.error(f"--runs must be within {MIN_RUNS}..{MAX_RUNS}")
    n = QUICK_COMPANIES if args.quick else args.companies
    if n <= 0:
        parser.error("--companies must be positive")
    emit_result(run(n, runs=args.runs, seed=args.seed, show_plan=args.explain))


if __name__ == "__main__":
    main()
