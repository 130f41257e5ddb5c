"""Process CPU per vendor request of the stages' shared HTTP client: httpx's pool, sharded, or over aiohttp.

    python -m bench.http_cpu [--pool single|sharded|aiohttp|both|all] [--requests 2000] [--in-flight 64]
                             [--latency-ms 20] [--shards N]

A loopback JSON server runs in a child process (so its CPU is not counted) and answers every
GET after LATENCY_MS, keeping connections alive. The bench sends REQUESTS requests, IN_FLIGHT at
a time, through `leadgen_core.vendors.http.request_json` (what the Tavily, Lusha and ZeroBounce
clients send through) on the client the stage builds: `single` is one `httpx.AsyncClient` with the
stage's pool limits (`enrich.context.http_pool_limits`, as many kept-alive connections as in
flight), `sharded` is `vendors.pool.sharded_client` over the same limits, `aiohttp` is
`vendors.aio_transport.aiohttp_client` (what the stages use since 2026-12-06). It prints the bench
process's CPU (time.process_time) per request for each, after a warm-up wave that opens the
connections. No database.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time

import httpx

from bench.common import emit_result, progress
from leadgen_core.vendors.aio_transport import aiohttp_client
from leadgen_core.vendors.http import request_json
from leadgen_core.vendors.pool import sharded_client

BODY = b'{"address": "a@b.example", "status": "valid", "sub_status": "", "free_email": false}'


def _serve(sock: socket.socket, latency_s: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode()
            + b"\r\n\r\n"
            + BODY
        )
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                if not request:
                    return
                if latency_s:
                    await asyncio.sleep(latency_s)
                writer.write(head)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=sock, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _run(client: httpx.AsyncClient, url: str, *, requests: int, in_flight: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await request_json(client, vendor="zerobounce", method="GET", url=url, params={"email": "a@b.example"})

    async with client:
        await asyncio.gather(*(worker(1) for _ in range(in_flight)))  # opens the connections
        per_worker, extra = divmod(requests, in_flight)
        started = time.process_time()
        await asyncio.gather(*(worker(per_worker + (1 if i < extra else 0)) for i in range(in_flight)))
        return time.process_time() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", choices=("single", "sharded", "aiohttp", "both", "all"), default="all")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=64, help="requests in flight = pool size (default 64)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="the server's answer delay (default 20)")
    parser.add_argument("--shards", type=int, default=None, help="shards of the sharded pool (default: by size)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pool, alternating (default 1)")
    args = parser.parse_args(argv)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v2/validate"
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(sock, args.latency_ms / 1000), daemon=True
    )
    server.start()
    sock.close()
    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)
    pools = {"both": ("single", "sharded"), "all": ("single", "sharded", "aiohttp")}.get(args.pool, (args.pool,))
    result: dict[str, object] = {"requests": args.requests, "in_flight": args.in_flight, "latency_ms": args.latency_ms}
    try:
        for _ in range(args.repeat):
            for pool in pools:
                if pool == "single":
                    client = httpx.AsyncClient(limits=limits)
                elif pool == "aiohttp":
                    client = aiohttp_client(limits)
                else:
                    client = sharded_client(limits, shards=args.shards)
                cpu_s = asyncio.run(_run(client, url, requests=args.requests, in_flight=args.in_flight))
                ms = round(cpu_s * 1000 / args.requests, 3)
                progress(f"{pool}: {ms} ms CPU a request")
                key = f"{pool}_cpu_ms_per_request"
                result[key] = min(ms, result.get(key, ms))  # type: ignore[call-overload]
    finally:
        server.terminate()
        server.join()
    emit_result(result)


if __name__ == "__main__":
    main()
