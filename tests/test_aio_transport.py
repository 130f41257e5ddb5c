"""The vendors' httpx client over aiohttp: same answers, same exception classes, same paid-call safety.

A loopback server with one path per behaviour (JSON, gzip, a slow answer, a dropped connection, a
cookie); the client is the one the stages use (`aiohttp_client(http_pool_limits(...))`), both
through httpx's API and through `request_json`'s direct path, and the OpenAI SDK's httpx2 client
over the same wire (`openai_http_client`).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from leadgen_core.enrich.context import http_pool_limits
from leadgen_core.errors import ChargeUncertain, VendorUnavailable
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.settings import Settings
from leadgen_core.vendors.aio_transport import MAX_ANSWER_BYTES, AioClient, aiohttp_client, openai_http_client
from leadgen_core.vendors.http import request_json
from leadgen_core.vendors.openai_extract import never_sent


@functools.cache
def bomb() -> bytes:
    """About 100 KB of gzip that inflates to 100 MB (made in 1 MB blocks, never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header
    block = b" " * (1024 * 1024)
    return b"".join([*(packer.compress(block) for _ in range(100)), packer.flush()])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 100 connections at once: socketserver's backlog of 5 drops handshakes (1-3 s retries)

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
                path = "/" + self.path.split("?")[0].split("/")[1]  # by its first segment: /slow/chat/... is /slow
                server.hits[path] = server.hits.get(path, 0) + 1
                server.seen.append(
                    {k.lower(): v for k, v in self.headers.items()} | {"_body": body.decode(), "_path": self.path}
                )
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
                elif path == "/huge":  # declares 64 MB: refused before a byte of the body is read
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(64 * 1024 * 1024))
                    self.end_headers()
                    self._stream(64 * 1024 * 1024)
                elif path == "/endless":  # chunked, no declared length, never ending
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    block = b"[" * 65536
                    try:
                        for _ in range(4096):  # 256 MB at most, if nobody hangs up
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    except OSError:
                        pass
                    self.close_connection = True
                elif path == "/cutgzip":  # a gzip body cut off before its end, with a length that matches
                    whole = gzip.compress(b'{"answer": "' + b"x" * 5000 + b'"}')
                    self._answer(
                        200, whole[: len(whole) // 2], Content_Type="application/json", Content_Encoding="gzip"
                    )
                elif path == "/bomb":  # 100 KB of gzip that inflates to 100 MB
                    self._answer(200, bomb(), Content_Type="application/json", Content_Encoding="gzip")
                elif path == "/busy":
                    self._answer(503, b'{"error": "busy"}', Content_Type="application/json")
                else:
                    self._answer(404, b"{}")

            def _stream(self, size: int) -> None:
                block = b" " * 65536
                try:
                    for _ in range(size // len(block)):
                        self.wfile.write(block)
                except OSError:  # the client hung up, as it should
                    pass
                self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                self._route(b"")

            def do_POST(self) -> None:  # noqa: N802
                self._route(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a client that gave up on /slow leaves a broken pipe behind: expected here

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


def _client() -> AioClient:
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
    assert zipped.json() == {"zipped": True}  # the transport decoded the Content-Encoding (under the bound)
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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_request_json_goes_direct_with_the_clients_headers_and_its_query_encoded(server: _Server) -> None:
    async def go() -> list[tuple[int, object]]:
        async with _client() as http:
            assert http.wire is not None  # no proxy in this environment: request_json skips httpx's client
            got = [
                await request_json(
                    http, vendor="zerobounce", method="GET", url=f"{server.url}/json",
                    params={"api_key": "k&=1", "email": "a+b@x.co", "ip_address": ""},
                ),
                await request_json(http, vendor="tavily", method="POST", url=f"{server.url}/json",
                                   json={"q": "Café"}, headers={"Authorization": "Bearer t"}),
                await request_json(http, vendor="tavily", method="GET", url=f"{server.url}/gzip"),
                await request_json(http, vendor="tavily", method="GET", url=f"{server.url}/cookie"),
                await request_json(http, vendor="tavily", method="GET", url=f"{server.url}/json"),
            ]  # fmt: skip
            return got

    got = asyncio.run(go())
    assert got[0] == (200, {"ok": True, "method": "GET"}) and got[1][1] == {"ok": True, "method": "POST"}
    assert got[2] == (200, {"zipped": True})  # a server that compresses unasked is still read
    query = httpx.URL(server.seen[0]["_path"]).params
    assert dict(query) == {"api_key": "k&=1", "email": "a+b@x.co", "ip_address": ""}
    assert server.seen[0]["user-agent"].startswith("python-httpx/")  # the client's own defaults
    assert "accept-encoding" not in server.seen[0]
    posted = server.seen[1]
    assert posted["authorization"] == "Bearer t" and posted["content-type"] == "application/json"
    assert json.loads(posted["_body"]) == {"q": "Café"}
    assert "cookie" not in server.seen[-1]  # a cookie set by one answer is not sent back


def test_an_environment_proxy_sends_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")

    async def go() -> None:
        async with _client() as http:
            assert http.wire is None  # httpx mounts the proxy; the direct path would bypass it

    asyncio.run(go())


def test_openai_sdk_over_the_wire_keeps_never_sent_and_uncertain_apart(server: _Server) -> None:
    async def ask(base_url: str, timeout: float = 5.0) -> BaseException:
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="sk-SECRET", max_retries=0, timeout=timeout, http_client=openai_http_client()
        ) as client:
            with pytest.raises(openai.APIError) as info:
                await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            return info.value

    async def go() -> tuple[BaseException, BaseException, BaseException]:
        refused = await ask(f"http://127.0.0.1:{_closed_port()}/v1")
        dropped = await ask(f"{server.url}/drop")  # the SDK asks for /drop/chat/completions
        slow = await ask(f"{server.url}/slow", timeout=0.3)
        return refused, dropped, slow

    refused, dropped, slow = asyncio.run(go())
    assert isinstance(refused, openai.APIConnectionError) and never_sent(refused)  # retried: nothing left
    assert isinstance(dropped, openai.APIConnectionError) and not never_sent(dropped)  # may have been charged
    assert isinstance(slow, openai.APITimeoutError) and not never_sent(slow)
    for exc in (refused, dropped, slow):
        assert "SECRET" not in str(exc) and "SECRET" not in str(exc.__cause__)
    assert server.hits["/drop"] == 1 and server.hits["/slow"] == 1  # sent once each


@pytest.mark.parametrize("path", ["/huge", "/endless", "/bomb"])
def test_an_answer_past_the_bound_is_refused_without_taking_the_memory(server: _Server, path: str) -> None:
    """A base URL pointed at a broken or hostile endpoint: a declared 64 MB, an endless chunked
    stream, a 100 KB gzip bomb of 100 MB. Each ends as a ReadError naming the bound, on every path
    (request_json's direct one, httpx's API, the OpenAI SDK), with the memory held near the bound;
    a paid request so cut off is uncertain, not re-sent."""
    import tracemalloc

    async def go() -> list[BaseException]:
        caught: list[BaseException] = []
        async with _client() as http:
            with pytest.raises(ChargeUncertain) as paid:
                await request_json(http, vendor="zerobounce", method="GET", url=f"{server.url}{path}", billable=True,
                                   retry=RetryPolicy(max_attempts=3, base_backoff_s=0.01))  # fmt: skip
            caught.append(paid.value)
            with pytest.raises(httpx.ReadError) as direct:
                await http.get(f"{server.url}{path}")
            caught.append(direct.value)
        async with openai.AsyncOpenAI(
            base_url=f"{server.url}{path}", api_key="sk-SECRET", max_retries=0, http_client=openai_http_client()
        ) as client:
            with pytest.raises(openai.APIConnectionError) as sdk:
                await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            caught.append(sdk.value)
        return caught

    tracemalloc.start()
    try:
        paid, direct, sdk = asyncio.run(go())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MAX_ANSWER_BYTES, peak  # the 256 MB stream and the 100 MB bomb were never held
    assert f"answer larger than {MAX_ANSWER_BYTES:,} bytes" in str(direct)
    assert f"answer larger than {MAX_ANSWER_BYTES:,} bytes" in str(sdk.__cause__)
    assert "not re-sent" in str(paid)
    assert server.hits[path] == 3  # once each path: the paid one was not re-sent


def test_a_gzip_body_cut_short_is_a_broken_answer_not_half_a_document(server: _Server) -> None:
    """zlib's streaming inflater does not raise at a cut-off end: the transport checks it reached the
    end, so a paid call is uncertain (as for a dropped connection), not a final malformed answer."""

    async def go() -> tuple[BaseException, BaseException]:
        async with _client() as http:
            with pytest.raises(httpx.RemoteProtocolError) as direct:
                await http.get(f"{server.url}/cutgzip")
            with pytest.raises(ChargeUncertain) as paid:
                await request_json(http, vendor="zerobounce", method="GET", url=f"{server.url}/cutgzip", billable=True)
            return direct.value, paid.value

    direct, paid = asyncio.run(go())
    assert "truncated" in str(direct) and "not re-sent" in str(paid)
