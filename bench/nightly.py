"""Benchmark: a whole tenant night (1,000 targets) against the sandbox, next to its analytic lower bound.

    python -m bench.nightly [--targets N | --quick] [--tenants N] [--default-caps] [--profile DIR]

What runs. A fresh bench database (bench.common) gets a synthetic registry through the real
loader and `upsert_companies`, and tenants with disjoint ICPs, a target cap of N, an Odoo
connection to the sandbox Odoo and vendor caps sized for the whole night (`--default-caps` keeps
the settings' defaults instead, e.g. TAVILY_MAX_QUERIES=300, which stop a 1,000-target night
early). The sandbox (`SandboxCluster`) runs in this process with documented-realistic latencies
(FaultConfig latency_ms, +-10% uniform jitter): web pages 150 ms, Tavily 800 ms, Lusha 400 ms,
a ZeroBounce batch 1.5 s, OpenAI 2.5 s (every chat completion, the lead-score rationales too:
the simulator cannot tell them apart), Odoo none. Nothing else is overridden: concurrency, rate
limits, crawler politeness and timeouts are the product's defaults (or the environment's).

Each tenant's night is `tenant_night_job` of `leadgen_dagster.definitions` (icp_candidates,
daily_targets, crawled_sites, web_extractions, contacts, email_verifications, lead_scores,
odoo_sync, and their checks) executed by Dagster (`execute_in_process`, the job's in-process
executor, the definitions' own resources) in its own process (`bench.night_worker`), as a run
worker would, on a Dagster instance rendered by the product (`write_dagster_home`: Postgres
storage, the vendor pools). With `--tenants N` the benchmark launches N such run workers for the
N tenant partitions at once, at most SCHED_TENANT_CONCURRENCY at a time, which is what the queued
run coordinator does with max_concurrent_runs = SCHED_TENANT_CONCURRENCY and one run per tenant
(the daemon itself is not started: its launch latency is not what is measured). The workers share
the vendor rate limits through Postgres as real run workers do. The simulators stay in this
process, so the workers' CPU is the product's own. The shared rate buckets start idle, as every
night after the first finds them (`night_setup.settle_rate_buckets` says why).

The lower bound. Each stage takes at least the larger of
    concurrency floor = (latency of every request the stage made) / workers
    rate floor        = (calls - burst) / rate, for each vendor it calls
and a night takes at least the sum over its stages (they run one after the other). Calls are
counted from the simulators' request logs after the run, so the bound uses the calls actually
made. Per stage:
    crawled_sites        one Tavily search per company without a website (all of them: ACRA has no
                         websites) + per site: robots.txt, the home page and the sub-pages it links
                         to (up to CRAWL_MAX_PAGES - 1; the sandbox's sites have 4), each page start
                         >= CRAWLER_DOMAIN_INTERVAL_S (0.5 s; a robots.txt Crawl-delay of 1 s on the
                         sandbox's "delay" sites) after the previous one, redirect hops back to back,
                         and the sandbox's "slow" sites 2 s more per request.
                         Workers: SCHED_COMPANY_CONCURRENCY (32). Rate: Tavily's.
    web_extractions      one OpenAI extraction per company with text + one Tavily extract per thin
                         crawl (its search is a cache hit). Workers 32. Rates: Tavily's, OpenAI's.
    contacts             Lusha prospecting (+ search-and-enrich when a preview can reveal an email)
                         for companies without a usable address. Workers 32. Rate: Lusha's
                         (one limiter slot per request the client sends).
    email_verifications  ZeroBounce batches of up to ZEROBOUNCE_BATCH_SIZE (200) addresses.
                         Workers: PARALLEL_BATCHES (2).
                         Rate: ZeroBounce's (5 batch calls a minute, burst 5).
    lead_scores          one OpenAI request per RATIONALE_BATCH (10) scored companies' rationales.
                         Workers 32 (requests in flight). Rate: OpenAI's.
    odoo_sync            Odoo calls are counted; no latency is configured, so the floor is 0 (the
                         stage's whole time counts as overhead); icp_candidates and daily_targets
                         are database work, floor 0.
The rates and bursts are those the product's limiters use: <VENDOR>_RPM when set, else
leadgen_core.enrich.clients.DEFAULT_RATES (the RESULT lists them); the workers come from the
settings; the latencies are the configured means.

With several tenants every request is attributed to the tenant whose company it is about, and
the bound is the largest of: each tenant's own sum over stages (its workers, its calls through
the buckets as if alone), and, for each stage and vendor, the shortest path around that vendor's
shared bucket: the fewest stages any tenant must finish before it (the first tenant to get
there), plus every tenant's calls of that stage through the one bucket, plus the fewest stages
any tenant still has after it. With one tenant this is exactly the sum above.
`bench/night_bound.py` implements all this.

Output. Progress lines on stderr; a table of stages (wall from run_stage_stats, CPU of the worker
processes in that stage, bound, calls); then `RESULT {json}` on stdout with tenants, targets,
wall_s (launch of the first worker to exit of the last), bound_s, ratio (wall / bound),
cpu_ms_per_company (workers' CPU / companies), peak_rss_mb (largest worker), stages, and more.
Targets: wall <= 10 minutes at default settings and ratio <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

import psycopg

from bench.common import bench_database, emit_result, progress, server_facts
from bench.night_bound import Attribution, Latencies, Limits, NightBound, night_bound, usage, vendor_rates
from bench.night_report import (
    TenantNight,
    format_table,
    read_emails,
    read_night,
    read_targets,
    stage_progress,
    stage_table,
)
from bench.night_setup import (
    MAX_TENANTS,
    BenchTenant,
    add_partitions,
    add_tenants,
    caps_in_force,
    dagster_home,
    live_candidates,
    load_registry,
    registry_rows,
    settle_rate_buckets,
)
from leadgen_core.db.dsn import sqlalchemy_url
from leadgen_core.enrich.clients import RateSpec
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.cluster import SandboxCluster
from leadgen_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FULL_TARGETS = 1000
QUICK_TARGETS = 100
DAY = date(2026, 11, 20)
LATENCY_MS = {"web": 150.0, "tavily": 800.0, "lusha": 400.0, "zerobounce": 1500.0, "openai": 2500.0}
JITTER = 0.10  # uniform +-10% around each mean: symmetric, so the means stay the bound's latencies
WALL_TARGET_S = 600.0
RATIO_TARGET = 1.25
PROGRESS_EVERY_S = 15.0
POLL_S = 0.5
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Options:
    targets: int
    tenants: int
    seed: int
    default_caps: bool
    profile: Path | None


@dataclass
class Worker:
    tenant: BenchTenant
    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    log_handle: IO[bytes]


def sandbox_faults() -> dict[str, FaultConfig]:
    return {name: FaultConfig(latency_ms=ms, latency_jitter_ms=ms * JITTER) for name, ms in LATENCY_MS.items()}


def latencies() -> Latencies:
    return Latencies(**{name: ms / 1000.0 for name, ms in LATENCY_MS.items()})


def child_env(cluster: SandboxCluster, *, owner_dsn: str, app_dsn: str, home: Path) -> dict[str, str]:
    """The run workers' environment: the sandbox, the bench database and the Dagster home."""
    return {
        **os.environ,
        **cluster.env(),
        "LEADGEN_DATABASE_URL": owner_dsn,
        "LEADGEN_APP_DATABASE_URL": app_dsn,
        "LEADGEN_DAGSTER_PG_URL": sqlalchemy_url(owner_dsn, search_path="dagster"),
        "DAGSTER_HOME": str(home),
    }


def start_worker(tenant: BenchTenant, *, env: dict[str, str], tmp: Path, profile: Path | None) -> Worker:
    out, log = tmp / f"{tenant.tenant_id}.json", tmp / f"{tenant.tenant_id}.log"
    cmd = [sys.executable, "-m", "bench.night_worker", "--tenant", tenant.tenant_id, "--day", DAY.isoformat(),
           "--out", str(out)]  # fmt: skip
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(profile / f"{tenant.tenant_id}.prof")]
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
    return Worker(tenant, proc, out, log, handle)


def run_workers(
    tenants: list[BenchTenant], *, env: dict[str, str], tmp: Path, limit: int, owner: psycopg.Connection,
    cluster: SandboxCluster, profile: Path | None,
) -> tuple[list[Worker], float]:  # fmt: skip
    """Every tenant's night, at most LIMIT at once; (the workers, wall seconds)."""
    queue = list(tenants)
    running: list[Worker] = []
    done: list[Worker] = []
    started = time.perf_counter()
    next_report = started + PROGRESS_EVERY_S
    try:
        while queue or running:
            while queue and len(running) < limit:
                running.append(start_worker(queue.pop(0), env=env, tmp=tmp, profile=profile))
            for w in [w for w in running if w.proc.poll() is not None]:
                running.remove(w)
                done.append(w)
                w.log_handle.close()
                progress(f"{w.tenant.tenant_id}: night ended, exit {w.proc.returncode}")
            if time.perf_counter() >= next_report:
                next_report += PROGRESS_EVERY_S
                states = "; ".join(f"{w.tenant.tenant_id}: {stage_progress(owner, w.tenant.tenant_id, DAY)}"
                                   for w in running)  # fmt: skip
                served = ", ".join(f"{name} {len(sim.log)}" for name, sim in cluster.sims.items() if name != "acra")
                progress(f"{states} | requests: {served}")
            time.sleep(POLL_S)
    finally:
        for w in running:  # interrupted: stop the workers this benchmark started
            w.proc.terminate()
            w.proc.wait(timeout=30)
            w.log_handle.close()
    return done, time.perf_counter() - started


def worker_report(w: Worker) -> dict[str, Any]:
    """The worker's own report; a failed night also prints the end of the worker's log."""
    if w.out.exists():
        report: dict[str, Any] = json.loads(w.out.read_text(encoding="utf-8"))
    else:
        report = {"success": False, "failed_steps": [f"the worker exited {w.proc.returncode} without a report"]}
    if not report.get("success"):
        tail = w.log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
        progress(f"{w.tenant.tenant_id}: the night FAILED (exit {w.proc.returncode}); end of its log:\n{tail}")
    return report


def run(opts: Options) -> dict[str, object]:
    settings = Settings()
    limit = min(opts.tenants, settings.sched_tenant_concurrency)
    with (
        tempfile.TemporaryDirectory(prefix="leadgen-nightly-") as tmp_name,
        bench_database() as bdb,
        psycopg.connect(bdb.owner_dsn, autocommit=True) as owner,
        SandboxCluster(faults=sandbox_faults(), registry_rows=100) as cluster,
    ):
        tmp = Path(tmp_name)
        facts = server_facts(owner)
        progress(f"server {facts['server_version']}; sandbox latencies (ms) {LATENCY_MS} +-{JITTER:.0%}")
        rows = registry_rows(opts.targets)
        loaded = load_registry(bdb.owner_dsn, rows=rows, day=DAY, seed=opts.seed)
        progress(f"registry: {loaded.staged:,} companies for {DAY}")
        tenants = add_tenants(owner, count=opts.tenants, targets=opts.targets, odoo_url=cluster.odoo.base_url,
                              night_caps=not opts.default_caps)  # fmt: skip
        for t in tenants:
            found = live_candidates(owner, t.ssic_prefixes)
            if found < opts.targets:
                raise SystemExit(f"{t.tenant_id}: only {found} live candidates for {opts.targets} targets")
        caps = caps_in_force(owner, tenants[0].tenant_id, settings)
        progress(f"tenants {[t.tenant_id for t in tenants]}, {opts.targets} targets each, caps {caps}")
        env = child_env(cluster, owner_dsn=bdb.owner_dsn, app_dsn=bdb.app_dsn, home=tmp / "dagster_home")
        os.environ["LEADGEN_DAGSTER_PG_URL"] = env["LEADGEN_DAGSTER_PG_URL"]  # read by the instance config
        home = dagster_home(tmp / "dagster_home", settings)
        add_partitions(home, tenants)
        settle_rate_buckets(owner)
        cluster.reset_logs()
        progress(f"starting {opts.tenants} night(s), {limit} at a time ...")
        workers, wall = run_workers(tenants, env=env, tmp=tmp, limit=limit, owner=owner, cluster=cluster,
                                    profile=opts.profile)  # fmt: skip
        reports = {w.tenant.tenant_id: worker_report(w) for w in workers}
        nights = [read_night(owner, t.tenant_id, DAY) for t in tenants]
        targets = [x for t in tenants for x in read_targets(owner, t.tenant_id, DAY)]
        who = Attribution(targets, read_emails(owner, [x.company_id for x in targets]))
        limits = Limits(settings.sched_company_concurrency, settings.crawler_domain_interval_s)
        rates = vendor_rates(settings)
        use = usage(cluster, who, latency=latencies(), limits=limits)
        nb = night_bound(use, tenants=[t.tenant_id for t in tenants], limits=limits, rates=rates)
        overlap = owner.execute(
            "SELECT count(*) - count(DISTINCT company_id) FROM daily_targets WHERE run_date = %s", (DAY,)
        ).fetchone()
    shared = int(overlap[0]) if overlap else 0
    return _result(opts, settings=settings, wall=wall, bound=nb, reports=reports, nights=nights, rates=rates,
                   facts=facts, kind=bdb.kind, caps=caps, rows=rows, shared=shared)  # fmt: skip


def _result(
    opts: Options, *, settings: Settings, wall: float, bound: NightBound, reports: dict[str, dict[str, Any]],
    nights: list[TenantNight], rates: dict[str, RateSpec], facts: dict[str, object], kind: str,
    caps: dict[str, int], rows: int, shared: int,
) -> dict[str, object]:  # fmt: skip
    """The stage table on stderr, and the RESULT object."""
    samples = {t: r.get("samples", []) for t, r in reports.items()}
    stages = stage_table(nights, samples, bound.stages)
    ratio = wall / bound.bound_s if bound.bound_s > 0 else float("inf")
    progress(
        "stages (wall and floor: the slowest tenant; cpu: every worker; shared: all tenants' calls through the "
        "stage's busiest bucket):\n" + format_table(stages)
    )
    progress(f"night: wall {wall:.1f}s, bound {bound.bound_s:.1f}s ({bound.binding}), ratio {ratio:.3f}")
    cpu_s = sum(float(r.get("cpu_s", 0.0)) for r in reports.values())
    degraded: Counter[str] = Counter()
    for n in nights:
        degraded.update(n.degraded)
    return {
        "tenants": opts.tenants,
        "targets": opts.targets,
        "wall_s": round(wall, 1),
        "bound_s": round(bound.bound_s, 1),
        "bound_binding": bound.binding,
        "ratio": round(ratio, 3),
        "cpu_ms_per_company": round(1000 * cpu_s / (opts.tenants * opts.targets), 1),
        "peak_rss_mb": round(max(int(r.get("maxrss_kb", 0)) for r in reports.values()) / 1024, 1),
        "stages": stages,
        "success": all(r.get("success") for r in reports.values()),
        "failed_steps": {t: r.get("failed_steps") for t, r in reports.items() if r.get("failed_steps")},
        "failed_checks": {t: r.get("failed_checks") for t, r in reports.items() if r.get("failed_checks")},
        "wall_target_met": wall <= WALL_TARGET_S,
        "ratio_target_met": ratio <= RATIO_TARGET,
        "night_s": {n.tenant_id: round(n.night_s, 1) for n in nights},
        "between_stages_s": {n.tenant_id: round(n.night_s - sum(s.seconds or 0.0 for s in n.stats), 1) for n in nights},
        "cpu_s": round(cpu_s, 1),
        "sandbox_process_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "bound_detail": bound.as_dict(),
        "degraded": dict(degraded.most_common()),
        "shared_targets": shared,
        "caps": "defaults" if opts.default_caps else caps,
        "settings": {
            "SCHED_COMPANY_CONCURRENCY": settings.sched_company_concurrency,
            "SCHED_TENANT_CONCURRENCY": settings.sched_tenant_concurrency,
            "CRAWLER_DOMAIN_INTERVAL_S": settings.crawler_domain_interval_s,
            "CRAWL_MAX_PAGES": settings.crawl_max_pages,
        },
        "latency_ms": LATENCY_MS,
        "rates_per_min": {v: round(r.per_s * 60, 1) for v, r in rates.items()},
        "registry_rows": rows,
        "server": kind,
        "server_version": facts["server_version"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.nightly", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--targets", type=int, default=FULL_TARGETS, help=f"targets per tenant (default {FULL_TARGETS:,})"
    )
    parser.add_argument("--quick", action="store_true", help=f"small run: {QUICK_TARGETS} targets")
    parser.add_argument("--tenants", type=int, default=1, help=f"tenants whose nights run at once, 1..{MAX_TENANTS}")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic registry")
    parser.add_argument("--default-caps", action="store_true", help="keep the settings' default vendor caps")
    parser.add_argument("--profile", type=Path, default=None, help="write each worker's cProfile stats to DIR")
    args = parser.parse_args(argv)
    targets = QUICK_TARGETS if args.quick else args.targets
    if targets <= 0:
        parser.error("--targets must be positive")
    if not 1 <= args.tenants <= MAX_TENANTS:
        parser.error(f"--tenants must be within 1..{MAX_TENANTS}")
    result = run(Options(targets, args.tenants, args.seed, args.default_caps, args.profile))
    emit_result(result)
    if not result["success"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
