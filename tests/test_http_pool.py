"""The stage's shared HTTP pool keeps alive as many connections as it has requests in flight."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from leadgen_core.enrich.context import http_pool_limits
from leadgen_core.settings import Settings
from leadgen_core.vendors.pool import ShardedTransport, shard_count, sharded_client

WAVE = 48  # requests in flight at once, each wave


class _Counting(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 drops handshakes when 48 connections open at once

    def __init__(self, wave: int | None = None) -> None:
        self.ports: set[int] = set()
        self.lock = threading.Lock()
        # with WAVE, every answer of a wave waits until the whole wave has arrived, so each wave
        # holds WAVE connections at once however slowly a loaded machine starts its requests
        # (without it, a request that began after an earlier one ended reused its connection)
        self.wave = threading.Barrier(wave, timeout=20) if wave else None

        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:  # noqa: N802
                with server.lock:
                    server.ports.add(self.client_address[1])
                if server.wave is not None:
                    try:
                        server.wave.wait()
                    except threading.BrokenBarrierError:
                        server.wave.reset()
                body = b'{"status": "valid"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def server() -> Iterator[_Counting]:
    yield from _serve(_Counting())


@pytest.fixture
def wave_server() -> Iterator[_Counting]:
    yield from _serve(_Counting(WAVE))


def _serve(srv: _Counting) -> Iterator[_Counting]:
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


async def _waves(url: str, limits: httpx.Limits, *, in_flight: int, waves: int) -> None:
    async with httpx.AsyncClient(limits=limits) as http:
        for _ in range(waves):
            await asyncio.gather(*(http.get(url) for _ in range(in_flight)))


def test_pool_keeps_every_in_flight_connection_alive(wave_server: _Counting) -> None:
    server = wave_server
    settings = Settings(ZEROBOUNCE_IN_FLIGHT=48)
    limits = http_pool_limits(settings, workers=32)
    assert limits.max_keepalive_connections == limits.max_connections == 48
    url = f"http://127.0.0.1:{server.server_address[1]}/v2/validate"
    asyncio.run(_waves(url, limits, in_flight=WAVE, waves=4))
    # 192 requests, 48 at a time: the second to fourth waves reuse the first wave's connections
    assert len(server.ports) <= 48


def test_a_smaller_keepalive_pool_reconnects_every_wave(wave_server: _Counting) -> None:
    """The failure the sizing avoids: 16 kept alive of 48 in flight opens new connections each wave."""
    server = wave_server
    url = f"http://127.0.0.1:{server.server_address[1]}/v2/validate"
    asyncio.run(_waves(url, httpx.Limits(max_connections=WAVE, max_keepalive_connections=16), in_flight=WAVE, waves=4))
    assert len(server.ports) > WAVE


# --- the sharded pool (vendors.pool) ------------------------------------------------------------


def test_shard_count_and_split() -> None:
    assert shard_count(None) == shard_count(0) == shard_count(8) == 1
    assert shard_count(9) == 2
    assert shard_count(64) == 8
    assert shard_count(10_000) == 16
    transport = ShardedTransport(httpx.Limits(max_connections=50, max_keepalive_connections=20), shards=4)
    assert transport.shards == 4
    assert transport._capacity == [13, 13, 12, 12]
    assert ShardedTransport(httpx.Limits(max_connections=2, max_keepalive_connections=2), shards=8).shards == 2


async def _sharded_waves(url: str, limits: httpx.Limits, *, in_flight: int, waves: int) -> ShardedTransport:
    async with sharded_client(limits, timeout=httpx.Timeout(10.0, pool=0.5)) as http:
        transport = http._transport
        assert isinstance(transport, ShardedTransport)
        for _ in range(waves):
            answers = await asyncio.gather(*(http.get(url) for _ in range(in_flight)))
            assert all(a.status_code == 200 for a in answers)
            assert transport._busy == [0] * transport.shards  # every response closed gave its slot back
        async with http.stream("GET", url) as resp:
            assert sum(transport._busy) == 1  # a streamed response holds its slot until it is closed
            await resp.aread()
        assert sum(transport._busy) == 0
        return transport


def test_sharded_pool_keeps_every_in_flight_connection_alive(server: _Counting) -> None:
    """The stage's client: 48 in flight over 6 shards of 8 never waits for a connection (pool
    timeout 0.5 s) and the later waves reuse the first wave's connections."""
    settings = Settings(ZEROBOUNCE_IN_FLIGHT=48)
    url = f"http://127.0.0.1:{server.server_address[1]}/v2/validate"
    transport = asyncio.run(_sharded_waves(url, http_pool_limits(settings, workers=32), in_flight=48, waves=4))
    assert transport.shards == 6
    assert len(server.ports) <= 48


def test_sharded_pool_releases_the_slot_of_a_failed_request() -> None:
    async def scenario() -> list[int]:
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with sharded_client(httpx.Limits(max_connections=16, max_keepalive_connections=16)) as http:
            transport = http._transport
            assert isinstance(transport, ShardedTransport)
            for _ in range(20):
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"http://127.0.0.1:{port}/")
            return transport._busy

    assert asyncio.run(scenario()) == [0, 0]


def test_one_verifying_tls_context_for_every_shard_and_stage() -> None:
    import ssl

    from leadgen_core.vendors.pool import shared_ssl_context

    context = shared_ssl_context()
    assert context is shared_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert shared_ssl_context(trust_env=False).verify_mode == ssl.CERT_REQUIRED
    transport = ShardedTransport(httpx.Limits(max_connections=32, max_keepalive_connections=32))
    pools = [shard._pool for shard in transport._shards]
    assert all(pool._ssl_context is context for pool in pools)
