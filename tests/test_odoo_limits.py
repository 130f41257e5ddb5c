"""Odoo answers are bounded: a byte cap and a total deadline, not only httpx's per-read timeout.

Real: both Odoo clients and their transport over loopback sockets; a hostile HTTP server (a
`ThreadingHTTPServer` written here) that streams a 400 MB body, declares one, or drips a body one
byte at a time just under the read timeout; Python's own allocation tracing for the memory bound.
Simulated: nothing else. The well-behaved case runs against OdooSim.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from leadgen_core.errors import OdooError
from leadgen_core.odoo import PROTOCOLS, OdooResponseTooLarge, RetryPolicy
from leadgen_core.odoo.client import MAX_RESPONSE_BYTES, OdooClient
from leadgen_core.odoo.json2 import Json2Client
from leadgen_core.odoo.jsonrpc import JsonRpcClient
from leadgen_core.sandbox.odoo import OdooSim

SECRET = "hostile-test-key-93ad"
HUGE = 400 * 1024 * 1024  # the body a hostile or broken server would send
BLOCK = 64 * 1024
RETRY = RetryPolicy(max_attempts=2, base_backoff_s=0.01, max_backoff_s=0.02)


class Hostile(ThreadingHTTPServer):
    """Answers every POST the way MODE says, counting the body bytes it managed to send."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.sent = 0
        self.requests = 0
        self.done = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Hostile

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        return

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests += 1
        try:
            getattr(self, f"_{self.server.mode}")()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what the test wants
        finally:
            self.server.done.set()
            self.close_connection = True

    def _chunked(self) -> None:  # no Content-Length: only reading shows the size
        self._head({"Transfer-Encoding": "chunked"})
        block = b"[" + b" " * (BLOCK - 1)
        while self.server.sent < HUGE:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            self.server.sent += len(block)
            block = b" " * BLOCK

    def _declared(self) -> None:
        self._head({"Content-Length": str(HUGE)})
        while self.server.sent < HUGE:
            self.wfile.write(b" " * BLOCK)
            self.server.sent += BLOCK

    def _drip(self) -> None:  # each byte well within the read timeout, the whole far past any deadline
        self._head({"Content-Length": "1000"})
        for _ in range(1000):
            self.wfile.write(b" ")
            self.wfile.flush()
            self.server.sent += 1
            time.sleep(0.05)

    def _head(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


@pytest.fixture
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    server = Hostile(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def client_for(protocol: str, url: str, **kw: Any) -> OdooClient:
    """A client of PROTOCOL for the user `bot` (SECRET) on database `db`; RETRY unless KW gives `retry`."""
    kw.setdefault("retry", RETRY)
    if protocol == "jsonrpc":
        return JsonRpcClient(base_url=url, db="db", login="bot", password=SECRET, **kw)
    return Json2Client(base_url=url, db="db", api_key=SECRET, **kw)


async def lookup(client: OdooClient) -> list[dict[str, Any]]:
    try:
        return await client.search_read("res.partner", [["is_company", "=", True]], fields=["name"])
    finally:
        await client.close()


@pytest.mark.parametrize("hostile", ["chunked", "declared"], indirect=True)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_400_mb_answer_stops_at_the_cap_with_bounded_memory(hostile: Hostile, protocol: str) -> None:
    tracemalloc.start()
    try:
        started = time.monotonic()
        with pytest.raises(OdooResponseTooLarge, match="byte cap") as info:
            asyncio.run(lookup(client_for(protocol, hostile.url)))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert SECRET not in str(info.value)
    assert peak < 3 * MAX_RESPONSE_BYTES, f"peak {peak / 2**20:.0f} MiB"  # not the 400 MB (nor 3x of it)
    assert hostile.done.wait(5.0)
    assert hostile.sent < MAX_RESPONSE_BYTES + 32 * 2**20  # the client hung up: the server got no further
    assert hostile.requests == 1  # the same request would get the same answer: not retried
    assert elapsed < 10.0


@pytest.mark.parametrize("hostile", ["drip"], indirect=True)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dripping_answer_stops_at_the_total_deadline(hostile: Hostile, protocol: str) -> None:
    client = client_for(protocol, hostile.url, timeout_s=5.0, deadline_s=0.4)  # each byte comes in 50 ms
    started = time.monotonic()
    with pytest.raises(OdooError, match="0.4 s deadline after 2 attempts"):
        asyncio.run(lookup(client))
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 3.0  # two attempts of 0.4 s, not 1000 bytes x 50 ms each
    assert hostile.requests == 2 and hostile.sent < 40


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_answers_under_the_cap_are_read_and_over_it_refused(protocol: str) -> None:
    with OdooSim(db="db", users={"bot": SECRET}) as sim:
        for i in range(40):
            sim.store.call("res.partner", "create", ids=[], args=[], kwargs={"vals_list": {"name": f"Partner {i:03d}",
                                                                                          "is_company": True}})  # fmt: skip
        rows = asyncio.run(lookup(client_for(protocol, sim.base_url, max_response_bytes=64 * 1024)))
        assert len(rows) == 40
        with pytest.raises(OdooResponseTooLarge, match="1,024-byte cap"):
            asyncio.run(lookup(client_for(protocol, sim.base_url, max_response_bytes=1024)))
