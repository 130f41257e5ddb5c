"""The crawler keeps a site's connection alive between its robots.txt and its pages, and never
reuses a connection whose answer it did not read to the end.

Real: an HTTP/1.1 server on loopback (the standard library's, one thread a connection) that
records each request's client port (one port per connection), the SafeFetcher with its SSRF
guard, robots.txt, the domain limiter and `crawl_site`. Simulated: DNS (`SandboxResolver` maps
`*.sandbox.test` to 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import pytest

from leadgen_core.crawler import AddressPolicy, DomainLimiter, RobotsCache, SafeFetcher, SandboxResolver, crawl_site
from leadgen_core.crawler.fetch import KEEPALIVE_S, BodyTooLarge

UA = "leadgen-test"
HOME = (
    b"<html><head><title>Acme</title></head><body><p>Acme Pte Ltd makes widgets.</p>"
    b'<a href="/about">About</a> <a href="/contact">Contact</a></body></html>'
)
PAGE = b"<html><body><p>Write to sales@acme.sandbox.test</p></body></html>"
HUGE = b"<html><body>" + b"x" * 300_000 + b"</body></html>"


class KeptAlive:
    """A site that keeps connections open (HTTP/1.1) and records (client port, Host, path) per request."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str | None, str]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                site.seen.append((self.client_address[1], self.headers.get("Host"), self.path))
                if self.path == "/robots.txt":
                    body, kind = b"User-agent: *\nAllow: /\n", "text/plain"
                else:
                    body, kind = {"/": HOME, "/huge": HUGE}.get(self.path, PAGE), "text/html; charset=utf-8"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client left mid-body, as it should past its byte cap

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def connections(self) -> int:
        return len({port for port, _, _ in self.seen})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[KeptAlive]:
    server = KeptAlive()
    yield server
    server.close()


def fetcher(site: KeptAlive, *, max_bytes: int = 1_000_000, keepalive: bool = True) -> SafeFetcher:
    return SafeFetcher(
        resolver=SandboxResolver(port=site.port),
        policy=AddressPolicy.sandbox([site.port]),
        user_agent=UA,
        timeout_s=3.0,
        max_bytes=max_bytes,
        max_redirects=2,
        keepalive=keepalive,
    )


def test_a_site_is_crawled_over_one_connection(site: KeptAlive) -> None:
    async def go() -> int:
        async with fetcher(site) as f:
            result = await crawl_site(
                "acme.sandbox.test", fetcher=f, robots=RobotsCache(fetcher=f), limiter=DomainLimiter(0.05),
                max_pages=5, site_deadline_s=10.0, user_agent=UA, keep_corpus=False,
            )  # fmt: skip
            return len(result.pages)  # status "thin": three short pages

    pages = asyncio.run(go())
    assert pages == 3
    assert [path for _, _, path in site.seen] == ["/robots.txt", "/", "/contact", "/about"]  # contact first
    assert site.connections() == 1  # robots.txt and three pages, one handshake


def test_without_keepalive_every_request_has_its_own_connection(site: KeptAlive) -> None:
    async def go() -> None:
        async with fetcher(site, keepalive=False) as f:
            for path in ("/", "/about", "/contact"):
                await f.fetch(f"http://acme.sandbox.test{path}")

    asyncio.run(go())
    assert site.connections() == 3


def test_an_answer_not_read_to_its_end_closes_its_connection(site: KeptAlive) -> None:
    """Past the byte cap the body is abandoned; the connection is closed, not handed to the next
    request (which would read the rest of the abandoned body as its answer)."""

    async def go() -> list[str]:
        texts = []
        async with fetcher(site, max_bytes=100_000) as f:
            texts.append((await f.fetch("http://acme.sandbox.test/")).text)
            with pytest.raises(BodyTooLarge):
                await f.fetch("http://acme.sandbox.test/huge")
            texts.append((await f.fetch("http://acme.sandbox.test/about")).text)
        return texts

    home, about = asyncio.run(go())
    assert "Acme Pte Ltd makes widgets" in home and "sales@acme.sandbox.test" in about
    ports = [port for port, _, _ in site.seen]
    assert ports[0] == ports[1] != ports[2]  # reused for /huge, a new connection after it


def test_an_idle_connection_is_closed_before_a_server_would_close_it() -> None:
    assert 0 < KEEPALIVE_S < 5.0  # Apache httpd's default KeepAliveTimeout
