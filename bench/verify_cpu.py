"""Process CPU per ZeroBounce validation through the verify stage's own sender.

    python -m bench.verify_cpu [--emails 2000] [--in-flight 64] [--time-scale 20] [--cprofile FILE]

What runs: `verify_stage._Batches.verify_one` for EMAILS distinct addresses, as the stage sends
them in single mode (ZEROBOUNCE_IN_FLIGHT at a time): for each, the Spender's single-flight claim,
reservation and journal in one statement (sql/047), `/v2/validate` through the toolkit's vendor client,
then the verification row, settlement and the claim's end in one statement. Real: Postgres
(a fresh bench database, the application role), the product's client and pool. Simulated:
ZeroBounce (`realistic` profile, its 1–5 s answers divided by TIME_SCALE) in a child process, so
its CPU is not counted. Prints the bench process's CPU per validation (worker threads included). As in a run worker, the
database steps run inline for a local server (LEADGEN_DB_STEPS) on the stages' event loop
(LEADGEN_EVENT_LOOP).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import time
from datetime import date
from multiprocessing.connection import Connection

import psycopg

from bench.common import bench_database, emit_result, progress
from leadgen_core import event_loop
from leadgen_core.db import steps as db_steps
from leadgen_core.db.pool import Database
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.context import EnrichContext, open_toolkit
from leadgen_core.enrich.verify_stage import _Batches
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.zerobounce import ZeroBounceSim
from leadgen_core.settings import Settings

TENANT = "bench-verify"
KEY = "bench-zerobounce-key"
DAY = date(2026, 11, 20)


def _serve(pipe: Connection, time_scale: float) -> None:
    sim = ZeroBounceSim(api_key=KEY, profile=SandboxProfile(name=ProfileName.REALISTIC, time_scale=time_scale))
    sim.start()
    pipe.send((sim.base_url, sim.bulk_base_url))
    pipe.recv()  # until the bench is done
    sim.stop()


async def verify(ctx: EnrichContext, emails: list[str]) -> int:
    async with open_toolkit(ctx, needs={"zerobounce"}) as kit:
        sender = _Batches(kit)
        await asyncio.gather(*(sender.verify_one(e) for e in emails))
        return len(sender.status)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=None, help="default ZEROBOUNCE_IN_FLIGHT (64)")
    parser.add_argument("--time-scale", type=float, default=20.0, help="ZeroBounce's latencies / K (default 20)")
    parser.add_argument("--cprofile", default=None, help="write cProfile stats of the sends to this file")
    args = parser.parse_args(argv)
    ours, theirs = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(theirs, args.time_scale), daemon=True)
    server.start()
    base_url, bulk_url = ours.recv()
    settings = Settings(ZEROBOUNCE_MAX_VERIFICATIONS=10 * args.emails + 100)  # type: ignore[call-arg]
    if args.in_flight:
        settings = settings.model_copy(update={"zerobounce_in_flight": args.in_flight})
    vendors = VendorConfig(zerobounce_base_url=base_url, zerobounce_api_key=KEY, zerobounce_bulk_base_url=bulk_url)
    try:
        with bench_database("leadgen_bench_verify") as bench:
            with psycopg.connect(bench.owner_dsn, autocommit=True) as owner:
                owner.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'Bench')", (TENANT,))
            db_steps.configure(bench.app_dsn)  # as the postgres resource does: inline for a local server
            with Database(bench.app_dsn, min_size=1, max_size=settings.pool_max_size, name="bench-verify") as db:
                ctx = EnrichContext(
                    tenant_id=TENANT, day=DAY, run_id=None, settings=settings, vendors=vendors,
                    tenant_conn=lambda: db.tenant_transaction(TENANT), global_conn=db.global_transaction,
                    global_statement=db.global_statement, tenant_pipe=lambda: db.tenant_pipeline(TENANT),  # as staged
                )  # fmt: skip
                event_loop.run(verify(ctx, [f"warm{i}@bench-warm.com.sg" for i in range(20)]))
                emails = [f"person{i}@firm-{i % 97}.com.sg" for i in range(args.emails)]
                progress(f"{len(emails)} validations, {settings.zerobounce_in_flight} in flight")
                profiler = cProfile.Profile() if args.cprofile else None
                cpu, wall = time.process_time(), time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                done = event_loop.run(verify(ctx, emails))
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(args.cprofile)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        emit_result({
            "emails": len(emails),
            "verified": done,
            "in_flight": settings.zerobounce_in_flight,
            "time_scale": args.time_scale,
            "cpu_ms_per_validation": round(1000 * cpu / len(emails), 3),
            "wall_s": round(wall, 1),
        })  # fmt: skip
    finally:
        ours.send("stop")
        server.join(timeout=10)


if __name__ == "__main__":
    main()
