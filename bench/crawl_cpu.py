"""Process CPU per site of the crawler itself (fetch, robots, parse), against the realistic web sim.

    python -m bench.crawl_cpu [--sites 200] [--in-flight 32] [--cprofile FILE]

The sandbox's web simulator (`leadgen_core.sandbox.web.WebSim`, realistic profile: 30–400 KB
pages) runs in a child process, so its CPU is not counted. The bench crawls SITES sites of the
simulator's natural scenario mix (`bench<i>-trading.sandbox.test`), IN_FLIGHT at a time, with
`crawler.crawl_site` and the stage's parts (`enrich.clients.crawler_parts`: SafeFetcher with the
SSRF guard, RobotsCache, DomainLimiter) and prints the bench process's CPU (time.process_time)
per site and per page. No database, no vendor.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import time
from multiprocessing.connection import Connection

from bench.common import emit_result, progress
from leadgen_core import event_loop
from leadgen_core.crawler import crawl_site
from leadgen_core.enrich.clients import VendorConfig, crawler_parts
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.web import WebSim
from leadgen_core.settings import Settings

SEED = 7


def _serve(pipe: Connection) -> None:
    sim = WebSim(seed=SEED, profile=SandboxProfile(name=ProfileName.REALISTIC, time_scale=1000), slow_delay_s=0.2)
    sim.start()
    pipe.send(sim.port)
    pipe.recv()  # until the bench is done
    sim.stop()


async def _crawl(settings: Settings, port: int, sites: int, in_flight: int) -> tuple[float, int, dict[str, int]]:
    parts = crawler_parts(VendorConfig(sandbox_web_port=port), settings)
    queue = [f"bench{i}-trading.sandbox.test" for i in range(sites)]
    pages = 0
    statuses: dict[str, int] = {}

    async def worker() -> None:
        nonlocal pages
        while queue:
            host = queue.pop()
            result = await crawl_site(
                host, fetcher=parts.fetcher, robots=parts.robots, limiter=parts.limiter,
                max_pages=settings.crawl_max_pages, site_deadline_s=settings.crawler_site_deadline_s,
                user_agent=settings.crawler_user_agent, keep_corpus=True,
            )  # fmt: skip
            pages += len(result.pages)
            statuses[result.status] = statuses.get(result.status, 0) + 1

    async with parts.fetcher:
        started = time.process_time()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.process_time() - started, pages, statuses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.crawl_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=32, help="sites crawled at once (default 32)")
    parser.add_argument("--cprofile", default=None, help="write the crawl's cProfile stats to this file")
    args = parser.parse_args(argv)

    ours, theirs = multiprocessing.get_context("fork").Pipe()
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(theirs,), daemon=True)
    server.start()
    port = ours.recv()
    settings = Settings(CRAWLER_DOMAIN_INTERVAL_S=0.0)
    profiler = cProfile.Profile() if args.cprofile else None
    try:
        if profiler is not None:
            profiler.enable()
        cpu_s, pages, statuses = event_loop.run(_crawl(settings, port, args.sites, args.in_flight))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    finally:
        ours.send("stop")
        server.join(10)
    progress(f"{args.sites} sites, {pages} pages, statuses {statuses}")
    emit_result({
        "sites": args.sites,
        "pages": pages,
        "cpu_ms_per_site": round(cpu_s * 1000 / args.sites, 2),
        "cpu_ms_per_page": round(cpu_s * 1000 / max(1, pages), 2),
        "statuses": statuses,
    })  # fmt: skip


if __name__ == "__main__":
    main()
