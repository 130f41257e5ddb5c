"""Benchmark: a whole tenant night (1,000 targets) against the sandbox, next to its lower bounds.

    python -m bench.nightly [--targets N | --quick] [--tenants N] [--profile realistic|demo]
        [--openai-tier N] [--time-scale K] [--stagger S] [--night-caps] [--cprofile DIR] [--forecast]

What runs. A fresh bench database (bench.common) gets a synthetic registry through the real
loader and `upsert_companies`, and tenants with disjoint ICPs, a target cap of N and an Odoo
connection to the sandbox Odoo, with the settings' default vendor caps (`--night-caps` sizes
them per target instead). The sandbox (`SandboxCluster`) runs in this process under the
`realistic` profile by default (leadgen_core/sandbox/profile.py): OpenAI at `--openai-tier`
(default 2) with its RPM/TPM buckets and output-paced latency, ZeroBounce's 1-5 s validations
(30 s tail), Odoo's 100-300 ms calls on 2 server workers, Lusha's and Tavily's documented
quotas, heavy small-company pages; the web, Tavily and Lusha simulators model no latency, so
REALISTIC_LATENCY_MS adds typical round trips (FaultConfig, +-10% uniform jitter). `--profile
demo` keeps the old fixed latencies (LATENCY_MS). Nothing else is overridden: concurrency, rate
limits, crawler politeness and timeouts are the product's defaults (or the environment's).

`--time-scale K` runs the same night K times faster: the simulators divide every latency and
multiply every rate limit by K (SandboxProfile), and the product's own limits are raised to
match (`scaled_limits_env`: OPENAI_RPM/TPM, TAVILY/LUSHA/ZEROBOUNCE_RPM, and the crawl's
CRAWLER_DOMAIN_INTERVAL_S and the sites' Crawl-delay divided by K). Every figure in RESULT is in
unscaled seconds (measured x K). CPU work and fixed overheads (process and step start-up) do not
shrink with K, so a large K flatters nothing but inflates wall/bound.

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

The vendor floor (bench/vendor_floor.py) is the other bound: over every documented vendor bucket
(requests, tokens; per second, minute, hour, day) the night's work through it, plus the shortest
fill before it and drain after it. Several tenants on shared accounts can approach it only if
they do not move through the buckets in step.

`--forecast` holds `leadgen night --dry-run`'s forecast against the night it forecasts: each
tenant's night before DAY runs first, for real (the history the forecast learns costs and time
per target from), then DAY's dry run (bench.night_worker --dry-run, the forecast exactly as the CLI
computes it), then the measured night. The vendor caps are doubled (two nights in one clock day)
and the registry sized for two nights. RESULT adds `forecast_errors` (forecast / real - 1, per
vendor's ledger units and for the duration, unscaled, over all tenants), `forecast_within_15pct`
and `forecast` (per tenant). The ledger check and every other figure are the measured night's.

Output. Progress lines on stderr; a table of stages (wall from run_stage_stats, CPU of the worker
processes in that stage, bound, calls); then `RESULT {json}` on stdout with profile, tenants,
targets, time_scale, wall_s (launch of the first worker to exit of the last), bound_s, ratio
(wall / bound), vendor_floor_s, floor_ratio (wall / vendor floor), max_tenant_night_s,
cpu_ms_per_company (workers' CPU / companies), peak_rss_mb (largest worker), openai_tokens (billed
by the simulator), odoo_calls_per_company, ledger_matches_vendor (each simulator's billable counter lies
between the vendor_usage ledger's units and its units plus its uncertain units: a request that timed
out after it was sent may or may not have been charged), ledger_exact (the units equal the bills and
nothing is uncertain), ledger_uncertain_units, db_transactions_per_company (transactions the
product's pools opened in the run workers, setup and checks included), machine_busy_core_s (the
machine's busy CPU over the night, every process), bench_process_cpu_s and bench_process_gc_s (this
process: the simulators and the progress reader), worker_cpu_per_simulator_cpu (cpu_s / bench_process_cpu_s:
the simulators' code does not change between nights, so this compares nights on a machine whose speed
drifts), stages, and more. Targets
(issue 9): 1 x 1,000 wall <= 15 minutes and ratio <= 1.25; several tenants floor_ratio <= 1.3.
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
from dataclasses import dataclass, field
from datetime import date, timedelta
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
from bench.night_worker import GcTimer
from bench.vendor_floor import BucketFloor, buckets, vendor_floor, work_by_kind
from leadgen_core.db.dsn import sqlalchemy_url
from leadgen_core.enrich.clients import RateSpec, VendorConfig
from leadgen_core.enrich.verify_stage import PARALLEL_BATCHES
from leadgen_core.gc_tuning import tune_for_simulators
from leadgen_core.night.stagger import start_offsets
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.cluster import SandboxCluster
from leadgen_core.sandbox.odoo import REALISTIC_CALL_S
from leadgen_core.sandbox.odoo import REALISTIC_WORKERS as ODOO_SERVER_WORKERS
from leadgen_core.sandbox.openai_sim import FIRST_TOKEN_S, OUTPUT_TOKENS_PER_S
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.web import CRAWL_DELAY_S, SLOW_DELAY_S
from leadgen_core.settings import Settings
from leadgen_core.vendors.limits import (
    ZEROBOUNCE_BATCH_MAX,
    ZEROBOUNCE_BATCH_MAX_S,
    ZEROBOUNCE_VALIDATE_TAIL_RATE,
    ZEROBOUNCE_VALIDATE_TAIL_S,
    ZEROBOUNCE_VALIDATE_TYPICAL_S,
)
from leadgen_core.vendors.openai_tiers import tier_limits

ROOT = Path(__file__).resolve().parents[1]
FULL_TARGETS = 1000
QUICK_TARGETS = 100
DAY = date(2026, 11, 20)
LATENCY_MS = {"web": 150.0, "tavily": 800.0, "lusha": 400.0, "zerobounce": 1500.0, "openai": 2500.0}
# The realistic simulators of OpenAI, ZeroBounce and Odoo pace their own answers from the vendors'
# documentation; the web, Tavily and Lusha simulators document none, so these typical round trips
# are added (a small-company site's page, a Tavily basic search, a Lusha bulk call).
REALISTIC_LATENCY_MS = {"web": 150.0, "tavily": 800.0, "lusha": 400.0}
JITTER = 0.10  # uniform +-10% around each mean: symmetric, so the means stay the bound's latencies
DEFAULT_OPENAI_TIER = 2
WALL_TARGET_S = 900.0  # issue 9: a 1,000-target night within 15 minutes (unscaled)
RATIO_TARGET = 1.25
FLOOR_RATIO_TARGET = 1.3
FORECAST_TOLERANCE = 0.15  # issue 9: the dry run's forecast within +-15% of the real night
PROGRESS_EVERY_S = 15.0
POLL_S = 0.5
LOG_TAIL_CHARS = 4000


@dataclass(frozen=True)
class Options:
    targets: int
    tenants: int
    seed: int
    night_caps: bool
    cprofile: Path | None
    profile: SandboxProfile = field(default_factory=lambda: SandboxProfile(ProfileName.REALISTIC))
    openai_tier: int = DEFAULT_OPENAI_TIER
    stagger_s: float | None = None  # unscaled seconds between tenant starts; None: SCHED_TENANT_STAGGER_S
    forecast: bool = False  # the night before for real, then tonight's dry-run forecast, held against the night


@dataclass
class Worker:
    tenant: BenchTenant
    proc: subprocess.Popen[bytes]
    out: Path
    log: Path
    log_handle: IO[bytes]


def sandbox_faults(profile: SandboxProfile) -> dict[str, FaultConfig]:
    """Latencies the simulators do not model themselves, shortened by the time scale."""
    table = REALISTIC_LATENCY_MS if profile.realistic else LATENCY_MS
    return {
        name: FaultConfig(latency_ms=profile.latency(ms), latency_jitter_ms=profile.latency(ms) * JITTER)
        for name, ms in table.items()
    }


def latencies(profile: SandboxProfile) -> Latencies:
    """Mean request latencies (scaled seconds) for the bound: the configured ones, and under the
    realistic profile the simulators' own documented means."""
    if not profile.realistic:
        return Latencies(**{name: profile.latency(ms / 1000.0) for name, ms in LATENCY_MS.items()})
    web, tavily, lusha = (profile.latency(REALISTIC_LATENCY_MS[n] / 1000.0) for n in ("web", "tavily", "lusha"))
    low, high = ZEROBOUNCE_VALIDATE_TYPICAL_S
    tail = ZEROBOUNCE_VALIDATE_TAIL_RATE
    validate = (1 - tail) * (low + high) / 2 + tail * (high + ZEROBOUNCE_VALIDATE_TAIL_S) / 2
    return Latencies(
        web=web, tavily=tavily, lusha=lusha,
        zerobounce=profile.latency(validate),
        openai=profile.latency(sum(FIRST_TOKEN_S) / 2),
        odoo=profile.latency(sum(REALISTIC_CALL_S) / 2),
        openai_s_per_output_token=profile.latency(1 / OUTPUT_TOKENS_PER_S),
        zerobounce_batch_s_per_address=profile.latency(ZEROBOUNCE_BATCH_MAX_S * 0.75 / ZEROBOUNCE_BATCH_MAX),
    )  # fmt: skip


def scaled_limits_env(settings: Settings, *, profile: SandboxProfile, openai_tier: int) -> dict[str, str]:
    """The product's own limits, raised by the time scale as the simulators' are (and the crawl's
    politeness intervals shortened), so a scaled night is the same night K times faster."""
    env = {"OPENAI_TIER": str(openai_tier)}
    k = profile.time_scale
    if k == 1.0:
        return env
    tier = tier_limits(openai_tier)
    rates = {v: VendorConfig().rate(v, settings).per_s * 60 for v in ("tavily", "lusha", "zerobounce")}
    return {
        **env,
        "OPENAI_RPM": repr((settings.openai_rpm or tier.rpm) * k),
        "OPENAI_TPM": repr((settings.openai_tpm or tier.tpm) * k),
        **{f"{v.upper()}_RPM": repr(rpm * k) for v, rpm in rates.items()},
        "CRAWLER_DOMAIN_INTERVAL_S": repr(profile.period(settings.crawler_domain_interval_s)),
    }


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


def start_worker(
    tenant: BenchTenant, *, env: dict[str, str], tmp: Path, cprofile: Path | None, day: date = DAY,
    phase: str = "night", dry_run: bool = False, time_scale: float = 1.0,
) -> Worker:  # fmt: skip
    out, log = tmp / f"{tenant.tenant_id}-{phase}.json", tmp / f"{tenant.tenant_id}-{phase}.log"
    cmd = [sys.executable, "-m", "bench.night_worker", "--tenant", tenant.tenant_id, "--day", day.isoformat(),
           "--out", str(out)]  # fmt: skip
    if dry_run:
        cmd += ["--dry-run", "--time-scale", repr(time_scale)]
    if cprofile is not None:
        cprofile.mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(cprofile / f"{tenant.tenant_id}-{phase}.prof")]
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
    return Worker(tenant, proc, out, log, handle)


def run_workers(
    tenants: list[BenchTenant], *, env: dict[str, str], tmp: Path, limit: int, owner: psycopg.Connection,
    cluster: SandboxCluster, cprofile: Path | None, offsets: dict[str, float] | None = None, day: date = DAY,
    phase: str = "night", dry_run: bool = False, time_scale: float = 1.0,
) -> tuple[list[Worker], float]:  # fmt: skip
    """Every tenant's night of DAY, at most LIMIT at once, each not before its OFFSETS seconds (the
    schedule's stagger, leadgen_core.night.stagger); (the workers, wall seconds). DRY_RUN: dry runs."""
    wait = offsets or {}
    queue = list(tenants)
    running: list[Worker] = []
    done: list[Worker] = []
    started = time.perf_counter()
    next_report = started + PROGRESS_EVERY_S
    try:
        while queue or running:
            while queue and len(running) < limit and time.perf_counter() - started >= wait.get(queue[0].tenant_id, 0):
                w = start_worker(queue.pop(0), env=env, tmp=tmp, cprofile=cprofile, day=day, phase=phase,
                                 dry_run=dry_run, time_scale=time_scale)  # fmt: skip
                running.append(w)
            for w in [w for w in running if w.proc.poll() is not None]:
                running.remove(w)
                done.append(w)
                w.log_handle.close()
                progress(f"{w.tenant.tenant_id}: {phase} ended, exit {w.proc.returncode}")
            if time.perf_counter() >= next_report:
                next_report += PROGRESS_EVERY_S
                states = "; ".join(f"{w.tenant.tenant_id}: {stage_progress(owner, w.tenant.tenant_id, day)}"
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


class MachineClock:
    """The machine's busy core-seconds (/proc/stat: every state but idle and iowait) and this process's
    CPU (the simulators, and the progress reader) over a block; gc_s is filled in by the caller."""

    def __init__(self) -> None:
        self.busy_s = self.bench_cpu_s = self.gc_s = 0.0
        self._busy0 = self._cpu0 = 0.0

    @staticmethod
    def _busy() -> float:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return 0.0
        return (sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> MachineClock:
        self._busy0, self._cpu0 = self._busy(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.busy_s = self._busy() - self._busy0
        self.bench_cpu_s = time.process_time() - self._cpu0

    def as_dict(self, cores: int) -> dict[str, float | int]:
        return {
            "machine_busy_core_s": round(self.busy_s, 1),
            "machine_cores": cores,
            "bench_process_cpu_s": round(self.bench_cpu_s, 1),
            "bench_process_gc_s": round(self.gc_s, 2),
        }


def run(opts: Options) -> dict[str, object]:
    k = opts.profile.time_scale
    # the product (workers and this process's bound) sees its limits raised as the simulators' are
    os.environ.update(scaled_limits_env(Settings(), profile=opts.profile, openai_tier=opts.openai_tier))
    settings = Settings()
    limit = min(opts.tenants, settings.sched_tenant_concurrency)
    with (
        tempfile.TemporaryDirectory(prefix="leadgen-nightly-") as tmp_name,
        bench_database() as bdb,
        psycopg.connect(bdb.owner_dsn, autocommit=True) as owner,
        SandboxCluster(faults=sandbox_faults(opts.profile), registry_rows=100, profile=opts.profile,
                       web_slow_delay_s=opts.profile.latency(SLOW_DELAY_S),
                       web_crawl_delay_s=opts.profile.period(CRAWL_DELAY_S)) as cluster,
    ):  # fmt: skip
        tmp = Path(tmp_name)
        facts = server_facts(owner)
        progress(f"server {facts['server_version']}; sandbox {opts.profile.name.value} x{k:g}, OpenAI tier "
                 f"{opts.openai_tier}; added latencies (ms, scaled) "
            f"{ {n: f.latency_ms for n, f in sandbox_faults(opts.profile).items()} } +-{JITTER:.0%}")  # fmt: skip
        runs = 2 if opts.forecast else 1  # the forecast learns from the night before, in the same clock day
        rows = registry_rows(opts.targets * runs)
        loaded = load_registry(bdb.owner_dsn, rows=rows, day=DAY, seed=opts.seed)
        progress(f"registry: {loaded.staged:,} companies for {DAY}")
        tenants = add_tenants(owner, count=opts.tenants, targets=opts.targets, odoo_url=cluster.odoo.base_url,
                              night_caps=opts.night_caps, nights=runs,
                              default_caps=settings.vendor_caps())  # fmt: skip
        for t in tenants:
            found = live_candidates(owner, t.ssic_prefixes)
            if found < opts.targets * runs:
                raise SystemExit(f"{t.tenant_id}: only {found} live candidates for {runs} x {opts.targets} targets")
        caps = caps_in_force(owner, tenants[0].tenant_id, settings)
        progress(f"tenants {[t.tenant_id for t in tenants]}, {opts.targets} targets each, caps {caps}")
        env = child_env(cluster, owner_dsn=bdb.owner_dsn, app_dsn=bdb.app_dsn, home=tmp / "dagster_home")
        os.environ["LEADGEN_DAGSTER_PG_URL"] = env["LEADGEN_DAGSTER_PG_URL"]  # read by the instance config
        home = dagster_home(tmp / "dagster_home", settings)
        add_partitions(home, tenants)
        stagger = settings.sched_tenant_stagger_s if opts.stagger_s is None else opts.stagger_s
        offsets = start_offsets([t.tenant_id for t in tenants], stagger_s=opts.profile.period(stagger),
                                concurrency=limit, sla_s=opts.profile.period(settings.sla_minutes * 60))  # fmt: skip
        forecasts: dict[str, dict[str, Any]] = {}
        if opts.forecast:
            forecasts = forecast_phase(tenants, env=env, tmp=tmp, limit=limit, owner=owner, cluster=cluster,
                                       offsets=offsets, time_scale=k)  # fmt: skip
        spent_before = tenant_ledger(owner)
        ledger_before, uncertain_before = ledger_units(owner)
        settle_rate_buckets(owner)
        cluster.reset_logs()
        progress(f"starting {opts.tenants} night(s), {limit} at a time, offsets (scaled s) {offsets} ...")
        tune_for_simulators()  # as `leadgen sandbox up` does (leadgen_core.gc_tuning)
        machine = MachineClock()
        with GcTimer() as bench_gc, machine:
            workers, wall = run_workers(tenants, env=env, tmp=tmp, limit=limit, owner=owner, cluster=cluster,
                                        cprofile=opts.cprofile, offsets=offsets)  # fmt: skip
        machine.gc_s = bench_gc.seconds
        reports = {w.tenant.tenant_id: worker_report(w) for w in workers}
        nights = [read_night(owner, t.tenant_id, DAY) for t in tenants]
        targets = [x for t in tenants for x in read_targets(owner, t.tenant_id, DAY)]
        who = Attribution(targets, read_emails(owner, [x.company_id for x in targets]))
        limits = Limits(settings.sched_company_concurrency, settings.crawler_domain_interval_s,
                        verify_workers=settings.zerobounce_in_flight if settings.zerobounce_mode == "single"
                        else PARALLEL_BATCHES,
                        odoo_workers=min(settings.odoo_max_in_flight, ODOO_SERVER_WORKERS)
                        if opts.profile.realistic else 1)  # fmt: skip
        rates = vendor_rates(settings)
        use = usage(cluster, who, latency=latencies(opts.profile), limits=limits)
        nb = night_bound(use, tenants=[t.tenant_id for t in tenants], limits=limits, rates=rates)
        floor_s, floors = vendor_floor(
            buckets(openai_tier=opts.openai_tier, lusha_plan=settings.lusha_plan,
                    tavily_key_kind=settings.tavily_key_kind, zerobounce_mode=settings.zerobounce_mode),
            work_by_kind(cluster, who), stage_floors=nb.tenant_stage_floors, scale=k,
        )  # fmt: skip
        ledger, uncertain = ledger_units(owner)
        ledger = {v: n - ledger_before.get(v, 0) for v, n in ledger.items()}  # the measured night's own
        uncertain = {v: n - uncertain_before.get(v, 0) for v, n in uncertain.items() if n - uncertain_before.get(v, 0)}
        spent = {t: {v: n - spent_before.get(t, {}).get(v, 0) for v, n in by_vendor.items()}
                 for t, by_vendor in tenant_ledger(owner).items()}  # fmt: skip
        billed = cluster.billable_units()
        odoo_calls = len(cluster.odoo.log)
        overlap = owner.execute(
            "SELECT count(*) - count(DISTINCT company_id) FROM daily_targets WHERE run_date = %s", (DAY,)
        ).fetchone()
    shared = int(overlap[0]) if overlap else 0
    vendor = VendorCheck(floor_s, floors, ledger, billed, odoo_calls, uncertain)
    result = _result(opts, settings=settings, wall=wall, bound=nb, reports=reports, nights=nights, rates=rates,
                     facts=facts, kind=bdb.kind, caps=caps, rows=rows, shared=shared, vendor=vendor)  # fmt: skip
    # where the machine's CPU went in the night: the run workers (cpu_s), this process (the simulators),
    # and the rest (the database server, the machine's own services)
    result.update(machine.as_dict(os.cpu_count() or 1))
    # the simulators' code is the same from night to night, so their CPU gauges how fast the machine ran:
    # comparing this ratio between nights that drift (BENCHMARKS.md, 2026-12-07 late night) compares the code
    sims = machine.bench_cpu_s
    result["worker_cpu_per_simulator_cpu"] = round(float(result["cpu_s"]) / sims, 3) if sims > 0 else None  # type: ignore[arg-type]
    if opts.forecast:
        result.update(forecast_accuracy(forecasts, spent, {n.tenant_id: n.night_s for n in nights}, time_scale=k))
    return result


def forecast_phase(
    tenants: list[BenchTenant], *, env: dict[str, str], tmp: Path, limit: int, owner: psycopg.Connection,
    cluster: SandboxCluster, offsets: dict[str, float], time_scale: float,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """`--forecast`: every tenant's night before DAY for real (what the forecast learns the tenant's
    costs and time per target from, `forecast.night_history`), then DAY's dry run; each tenant's
    forecast (bench.night_worker's `forecast_report`)."""
    before = DAY - timedelta(days=1)
    settle_rate_buckets(owner)
    progress(f"forecast: the night before ({before}) for real, the history the forecast learns from ...")
    workers, wall = run_workers(tenants, env=env, tmp=tmp, limit=limit, owner=owner, cluster=cluster, cprofile=None,
                                offsets=offsets, day=before, phase="night-before")  # fmt: skip
    failed = [w.tenant.tenant_id for w in workers if not worker_report(w).get("success")]
    if failed:
        raise SystemExit(f"forecast: the night before failed for {failed}")
    progress(f"forecast: the night before took {wall:.1f}s (scaled); {DAY}'s dry runs ...")
    workers, wall = run_workers(tenants, env=env, tmp=tmp, limit=limit, owner=owner, cluster=cluster, cprofile=None,
                                day=DAY, phase="dry-run", dry_run=True, time_scale=time_scale)  # fmt: skip
    reports = {w.tenant.tenant_id: worker_report(w) for w in workers}
    forecasts: dict[str, dict[str, Any]] = {t: r["forecast"] for t, r in reports.items() if r.get("forecast")}
    if len(forecasts) < len(tenants):
        raise SystemExit(f"forecast: no forecast from the dry run of {sorted(set(reports) - set(forecasts))}")
    progress(f"forecast: dry runs took {wall:.1f}s (scaled): " + "; ".join(
        f"{t}: {fc['units']} {fc['seconds'] * time_scale:.0f}s" for t, fc in forecasts.items()))  # fmt: skip
    return forecasts


def tenant_ledger(owner: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Units the vendor_usage ledger booked, per tenant and vendor (every day)."""
    out: dict[str, dict[str, int]] = {}
    for tenant, vendor, units in owner.execute(
        "SELECT tenant_id, vendor, sum(units) FROM vendor_usage GROUP BY 1, 2"
    ).fetchall():
        out.setdefault(str(tenant), {})[str(vendor)] = int(units)
    return out


def forecast_accuracy(
    forecasts: dict[str, dict[str, Any]], spent: dict[str, dict[str, int]], night_s: dict[str, float], *,
    time_scale: float,
) -> dict[str, object]:  # fmt: skip
    """Each tenant's dry-run forecast against its real night: units per vendor (the ledger's) and the
    duration (first stage's start to last stage's end, unscaled); the errors are forecast / real - 1,
    and `forecast_errors` sums every tenant's forecast and real units (and seconds) first."""
    per_tenant: dict[str, dict[str, Any]] = {}
    totals: dict[str, list[float]] = {}
    for tenant, fc in forecasts.items():
        real = {v: n for v, n in spent.get(tenant, {}).items() if n}
        rows: dict[str, Any] = {}
        for vendor in sorted(set(real) | {v for v, n in fc["units"].items() if n}):
            f, r = int(fc["units"].get(vendor, 0)), real.get(vendor, 0)
            rows[vendor] = {"forecast": f, "real": r, "error": round(f / r - 1, 3) if r else None}
            totals.setdefault(vendor, [0.0, 0.0])
            totals[vendor][0] += f
            totals[vendor][1] += r
        f_s, r_s = float(fc["seconds"]) * time_scale, night_s.get(tenant, 0.0) * time_scale
        rows["duration_s"] = {"forecast": round(f_s, 1), "real": round(r_s, 1),
                              "error": round(f_s / r_s - 1, 3) if r_s else None}  # fmt: skip
        totals.setdefault("duration_s", [0.0, 0.0])
        totals["duration_s"][0] += f_s
        totals["duration_s"][1] += r_s
        rows["basis"] = "history" if fc["history_seconds"] > fc["limits_seconds"] else "vendor limits"
        rows["history_nights"] = fc["history_nights"]
        per_tenant[tenant] = rows
    errors = {k: round(f / r - 1, 3) for k, (f, r) in totals.items() if r}
    within = {k: abs(e) <= FORECAST_TOLERANCE for k, e in errors.items()}
    progress("forecast vs night: " + ", ".join(f"{k} {e:+.1%}" for k, e in errors.items()))
    return {"forecast_errors": errors, "forecast_within_15pct": within, "forecast": per_tenant}


@dataclass(frozen=True)
class VendorCheck:
    """The vendor floor (scaled seconds), and the ledger next to the simulators' own bills."""

    floor_s: float
    floors: list[BucketFloor]
    ledger: dict[str, int]
    billed: dict[str, int]
    odoo_calls: int
    uncertain: dict[str, int] = field(default_factory=dict)

    @property
    def ledger_exact(self) -> bool:
        """The ledger's units are the simulators' bills, vendor by vendor, with nothing uncertain."""
        return all(self.ledger.get(v, 0) == n for v, n in self.billed.items()) and not any(self.uncertain.values())

    @property
    def ledger_matches(self) -> bool:
        """Every bill lies between the ledger's units and its units plus its uncertain units.

        An uncertain charge is a billable request that timed out after it was sent (or one a killed
        run left open): the vendor may or may not have charged it, and the ledger says so rather
        than guess, so the bill can only be checked to lie in that range."""
        units, uncertain = self.ledger, self.uncertain
        return all(units.get(v, 0) <= n <= units.get(v, 0) + uncertain.get(v, 0) for v, n in self.billed.items())


def ledger_units(owner: psycopg.Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Units and uncertain units the vendor_usage ledger booked per vendor, every tenant and day."""
    rows = owner.execute("SELECT vendor, sum(units), sum(uncertain_units) FROM vendor_usage GROUP BY vendor").fetchall()
    return {str(v): int(n) for v, n, _ in rows}, {str(v): int(u) for v, _, u in rows if u}


def _result(
    opts: Options, *, settings: Settings, wall: float, bound: NightBound, reports: dict[str, dict[str, Any]],
    nights: list[TenantNight], rates: dict[str, RateSpec], facts: dict[str, object], kind: str,
    caps: dict[str, int], rows: int, shared: int, vendor: VendorCheck,
) -> dict[str, object]:  # fmt: skip
    """The stage table on stderr, and the RESULT object (seconds unscaled: measured x time scale)."""
    k = opts.profile.time_scale
    samples = {t: r.get("samples", []) for t, r in reports.items()}
    stages = stage_table(nights, samples, bound.stages)
    ratio = wall / bound.bound_s if bound.bound_s > 0 else float("inf")
    floor_ratio = wall / vendor.floor_s if vendor.floor_s > 0 else float("inf")
    progress(
        "stages (wall and floor: the slowest tenant; cpu: every worker; shared: all tenants' calls through the "
        "stage's busiest bucket):\n" + format_table(stages)
    )
    progress(f"night (scaled s): wall {wall:.1f}s, bound {bound.bound_s:.1f}s ({bound.binding}), ratio {ratio:.3f}; "
             f"vendor floor {vendor.floor_s:.1f}s ({vendor.floors[0].bucket if vendor.floors else '-'}), "
             f"floor ratio {floor_ratio:.3f}; x{k:g} for unscaled")  # fmt: skip
    cpu_s = sum(float(r.get("cpu_s", 0.0)) for r in reports.values())
    degraded: Counter[str] = Counter()
    for n in nights:
        degraded.update(n.degraded)
    companies = opts.tenants * opts.targets
    return {
        "profile": opts.profile.name.value,
        "tenants": opts.tenants,
        "targets": opts.targets,
        "time_scale": k,
        "openai_tier": opts.openai_tier,
        "stagger_s": settings.sched_tenant_stagger_s if opts.stagger_s is None else opts.stagger_s,
        "wall_s": round(wall * k, 1),
        "bound_s": round(bound.bound_s * k, 1),
        "ratio": round(ratio, 3),
        "vendor_floor_s": round(vendor.floor_s * k, 1),
        "floor_ratio": round(floor_ratio, 3),
        "max_tenant_night_s": round(max((n.night_s for n in nights), default=0.0) * k, 1),
        "cpu_ms_per_company": round(1000 * cpu_s / companies, 1),
        "peak_rss_mb": round(max(int(r.get("maxrss_kb", 0)) for r in reports.values()) / 1024, 1),
        "openai_tokens": vendor.billed.get("openai", 0),
        "odoo_calls_per_company": round(vendor.odoo_calls / companies, 3),
        "ledger_matches_vendor": vendor.ledger_matches,
        "ledger_exact": vendor.ledger_exact,
        "ledger_units": vendor.ledger,
        "ledger_uncertain_units": vendor.uncertain,
        "vendor_billed_units": vendor.billed,
        "vendor_floors_s": {
            f.bucket: {
                "work": f.work,
                "fill_s": round(f.fill_s * k, 1),
                "through_s": round(f.through_s * k, 1),
                "drain_s": round(f.drain_s * k, 1),
            }
            for f in vendor.floors
        },
        "bound_binding": bound.binding,
        "stages": stages,
        "success": all(r.get("success") for r in reports.values()),
        "failed_steps": {t: r.get("failed_steps") for t, r in reports.items() if r.get("failed_steps")},
        "failed_checks": {t: r.get("failed_checks") for t, r in reports.items() if r.get("failed_checks")},
        "wall_target_met": wall * k <= WALL_TARGET_S,
        "ratio_target_met": ratio <= RATIO_TARGET,
        "floor_ratio_target_met": floor_ratio <= FLOOR_RATIO_TARGET,
        "night_s": {n.tenant_id: round(n.night_s * k, 1) for n in nights},
        "between_stages_s": {
            n.tenant_id: round((n.night_s - sum(s.seconds or 0.0 for s in n.stats)) * k, 1) for n in nights
        },  # fmt: skip
        "cpu_s": round(cpu_s, 1),
        "cpu_sys_s": round(sum(float(r.get("cpu_sys_s", 0.0)) for r in reports.values()), 1),
        # the cyclic garbage collector's share of the run workers' CPU (see leadgen_core.runtime)
        "gc_s": round(sum(float(r.get("gc_s", 0.0)) for r in reports.values()), 2),
        "gc_collections": [sum(int(r.get("gc_collections", [0, 0, 0])[g]) for r in reports.values()) for g in range(3)],
        # transactions the product's pools opened in the run workers (leadgen_core.db.pool), a company
        "db_transactions_per_company": round(
            sum(int(r.get("db_transactions", 0)) for r in reports.values()) / companies, 2
        ),
        "sandbox_process_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "bound_detail": bound.as_dict(),
        "degraded": dict(degraded.most_common()),
        "shared_targets": shared,
        "caps": caps if opts.night_caps else {"defaults": caps},
        "settings": {
            "SCHED_COMPANY_CONCURRENCY": settings.sched_company_concurrency,
            "SCHED_TENANT_CONCURRENCY": settings.sched_tenant_concurrency,
            "CRAWLER_DOMAIN_INTERVAL_S": settings.crawler_domain_interval_s,
            "CRAWL_MAX_PAGES": settings.crawl_max_pages,
        },
        "latency_ms": REALISTIC_LATENCY_MS if opts.profile.realistic else LATENCY_MS,
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
    parser.add_argument(
        "--night-caps",
        action="store_true",
        help="size the vendor caps per target (bench.night_setup) instead of the settings' defaults",
    )
    parser.add_argument("--cprofile", type=Path, default=None, help="write each worker's cProfile stats to DIR")
    parser.add_argument(
        "--profile",
        choices=[p.value for p in ProfileName],
        default=ProfileName.REALISTIC.value,
        help="sandbox profile (default realistic: the vendors' documented limits)",
    )
    parser.add_argument(
        "--openai-tier",
        type=int,
        choices=range(1, 6),
        default=DEFAULT_OPENAI_TIER,
        help=f"OpenAI usage tier whose limits apply (default {DEFAULT_OPENAI_TIER})",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="K: latencies / K, rate limits x K, crawl intervals / K; figures reported unscaled",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=None,
        help="unscaled seconds between tenant starts (default SCHED_TENANT_STAGGER_S, the schedule's)",
    )
    parser.add_argument(
        "--forecast",
        action="store_true",
        help="run the night before for real, dry-run tonight, and hold the forecast against tonight's night",
    )
    args = parser.parse_args(argv)
    targets = QUICK_TARGETS if args.quick else args.targets
    if targets <= 0:
        parser.error("--targets must be positive")
    if not 1 <= args.tenants <= MAX_TENANTS:
        parser.error(f"--tenants must be within 1..{MAX_TENANTS}")
    try:
        profile = SandboxProfile.parse(args.profile, args.time_scale)
    except ValueError as exc:
        parser.error(str(exc))
    result = run(Options(targets, args.tenants, args.seed, args.night_caps, args.cprofile, profile,
                         args.openai_tier, args.stagger, args.forecast))  # fmt: skip
    emit_result(result)
    if not result["success"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
