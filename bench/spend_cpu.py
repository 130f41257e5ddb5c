"""Process CPU and wall time per paid call through `Spender.call`, against a stub vendor call.

    python -m bench.spend_cpu [--calls N] [--concurrency C]

N distinct cacheable requests (each a cache miss: lookup, claim, reservation and journal, the stub
`run`, then the answer's cache row, settlement and the claim's end), then the same N again (each a
cache hit). The stub answers at once, so the figures are the Spender's and the database driver's
own cost; process CPU time includes any worker threads the database steps run in (none for a local
server: they run inline, LEADGEN_DB_STEPS, as in a run worker, on the stages' event loop). The database is
a fresh one on the chosen server (bench.common), touched as the application role.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import psycopg

from bench.common import bench_database, emit_result, progress
from leadgen_core import event_loop
from leadgen_core.db import steps as db_steps
from leadgen_core.db.pool import Database
from leadgen_core.spend.spender import Spender

TENANT = "bench-spend"


async def calls(spender: Spender, n: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run() -> tuple[Any, int]:
        return {"results": ["stub"]}, 1

    async def one(i: int) -> None:
        async with gate:
            await spender.call(vendor="tavily", request={"query": f"company {i}"}, estimate=1, run=run)

    await asyncio.gather(*(one(i) for i in range(n)))


def measure(spender: Spender, n: int, concurrency: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per call."""
    cpu, wall = time.process_time(), time.perf_counter()
    event_loop.run(calls(spender, n, concurrency))
    return (time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spend_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="paid calls, then as many cache hits (default 500)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once (default 1)")
    args = parser.parse_args(argv)
    with bench_database("leadgen_bench_spend") as bench:
        with psycopg.connect(bench.owner_dsn, autocommit=True) as owner:
            owner.execute("INSERT INTO tenants (tenant_id, name) VALUES (%s, 'Bench')", (TENANT,))
        db_steps.configure(bench.app_dsn)  # as the postgres resource does: inline for a local server
        with Database(bench.app_dsn, min_size=1, max_size=4, name="bench-spend") as db:
            spender = Spender(
                tenant_id=TENANT,
                caps={"tavily": 10 * args.calls},
                tenant_conn=lambda: db.tenant_transaction(TENANT),
                global_conn=db.global_transaction,
                tenant_pipe=lambda: db.tenant_pipeline(TENANT),  # as the stages do
                statement_conn=db.global_statement,
            )
            measure(spender, 20, 1)  # warm the pool and the statements' plans
            progress(f"{args.calls} paid calls, concurrency {args.concurrency}")
            paid_cpu, paid_wall = measure(spender, args.calls, args.concurrency)
            progress(f"{args.calls} cache hits")
            hit_cpu, hit_wall = measure(spender, args.calls, args.concurrency)
        emit_result({
            "calls": args.calls,
            "concurrency": args.concurrency,
            "paid_cpu_ms_per_call": round(paid_cpu, 3),
            "paid_wall_ms_per_call": round(paid_wall, 3),
            "hit_cpu_ms_per_call": round(hit_cpu, 3),
            "hit_wall_ms_per_call": round(hit_wall, 3),
            "spent": spender.spent.get("tavily", 0),
        })  # fmt: skip


if __name__ == "__main__":
    main()
