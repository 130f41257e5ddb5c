"""The vendors' httpx client over aiohttp: same answers, same exception classes, same paid-call safety.

A loopback server with one path per behaviour (JSON, gzip, a slow answer, a dropped connection, a
cookie); the client is the one the stages use (`aiohttp_client(http_pool_limits(...))`).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from leadgen_core.enrich.context import http_pool_limits
from leadgen_core.errors import ChargeUncertain, VendorUnavailable
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.settings import Settings
from leadgen_core.vendors.aio_transport import aiohttp_client
from leadgen_core.vendors.http import request_json


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _answer(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k.replace("_", "-"), v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self, body: bytes) -> None:
                path = self.path.split("?")[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                server.seen.append({k.lower(): v for k, v in self.headers.items()} | {"_body": body.decode()})
                if path == "/json":
                    self._answer(
                        200, json.dumps({"ok": True, "method": self.command}).encode(), Content_Type="application/json"
                    )
                elif path == "/gzip":
                    self._answer(
                        200,
                        gzip.compress(b'{"zipped": true}'),
                        Content_Type="application/json",
                        Content_Encoding="gzip",
                    )
                elif path == "/cookie":
                    self._answer(200, b"{}", Content_Type="application/json", Set_Cookie="session=abc; Path=/")
                elif path == "/slow":
                    time.sleep(1.5)
                    self._answer(200, b"{}", Content_Type="application/json")
                elif path == "/drop":
                    self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
                    self.wfile.flush()
                    self.close_connection = True
                elif path == "/busy":
                    self._answer(503, b'{"error": "busy"}', Content_Type="application/json")
                else:
                    self._answer(404, b"{}")

            def do_GET(self) -> None:  # noqa: N802
                self._route(b"")

            def do_POST(self) -> None:  # noqa: N802
                self._route(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client() -> httpx.AsyncClient:
    return aiohttp_client(http_pool_limits(Settings(), workers=8))


def test_answers_bodies_and_headers_as_httpx_would(server: _Server) -> None:
    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with _client() as http:
            posted = await http.post(f"{server.url}/json", json={"email": "a@b.co"}, headers={"X-Key": "k1"})
            zipped = await http.get(f"{server.url}/gzip")
            await http.get(f"{server.url}/cookie")
            missing = await http.get(f"{server.url}/nothing")
            await http.get(f"{server.url}/json")
            return posted, zipped, missing

    posted, zipped, missing = asyncio.run(go())
    assert posted.status_code == 200 and posted.json() == {"ok": True, "method": "POST"}
    assert zipped.json() == {"zipped": True}  # httpx decoded the Content-Encoding
    assert missing.status_code == 404
    first = server.seen[0]
    assert first["x-key"] == "k1" and first["content-type"] == "application/json"
    assert json.loads(first["_body"]) == {"email": "a@b.co"}
    assert "cookie" not in server.seen[-1]  # a cookie set by one answer is not sent back


def test_connect_failure_is_a_connect_error_and_retried() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def go() -> None:
        async with _client() as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/json?api_key=SECRET")
            with pytest.raises(VendorUnavailable) as info:
                await request_json(
                    http, vendor="zerobounce", method="GET", url=f"http://127.0.0.1:{port}/json?api_key=SECRET", billable=True,
                    retry=RetryPolicy(max_attempts=2, base_backoff_s=0.01, max_backoff_s=0.01),
                )  # fmt: skip
            assert "gave up after 2 attempts" in str(info.value) and "SECRET" not in str(info.value)

    asyncio.run(go())


def test_paid_call_that_timed_out_or_dropped_is_uncertain_and_not_resent(server: _Server) -> None:
    async def go() -> None:
        async with _client() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{server.url}/slow", timeout=httpx.Timeout(0.3))
            for path in ("/slow", "/drop"):
                with pytest.raises(ChargeUncertain):
                    await request_json(
                        http, vendor="zerobounce", method="GET", url=f"{server.url}{path}?api_key=SECRET",
                        billable=True, timeout_s=0.3,
                        retry=RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.01),
                    )  # fmt: skip

    asyncio.run(go())
    assert server.hits["/slow"] == 2  # the plain GET, then the paid call once: never re-sent
    assert server.hits["/drop"] == 1


def test_unpaid_5xx_is_retried_and_many_in_flight_share_the_pool(server: _Server) -> None:
    async def go() -> list[int]:
        async with _client() as http:
            with pytest.raises(VendorUnavailable):
                await request_json(
                    http, vendor="tavily", method="GET", url=f"{server.url}/busy",
                    retry=RetryPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.01),
                )  # fmt: skip
            answers = await asyncio.gather(*(http.get(f"{server.url}/json") for _ in range(100)))
            return [a.status_code for a in answers]

    assert asyncio.run(go()) == [200] * 100
    assert server.hits["/busy"] == 3
