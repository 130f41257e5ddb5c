"""The crawler over TLS: it connects to the vetted IP, yet names the host for SNI and certificate checks.

Real: a TLS web server on loopback (the standard library's, with a self-signed certificate made by
`openssl` for the test), the SafeFetcher and its SSRF guard. Simulated: DNS (`SandboxResolver`
maps `*.sandbox.test` to 127.0.0.1). The fetcher trusts only the test's certificate.
"""

from __future__ import annotations

import asyncio
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadgen_core.crawler.fetch import FetchUnreachable, SafeFetcher
from leadgen_core.crawler.ssrf import AddressPolicy, SandboxResolver

HOST = "secure.sandbox.test"
PAGE = b"<html><head><title>Secure</title></head><body>hello over tls</body></html>"


def certificate(tmp: Path, name: str, *also: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    names = ",".join(f"DNS:{n}" for n in (name, *also))
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
               "-out", str(cert), "-subj", f"/CN={name}", "-addext", f"subjectAltName={names}"]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603
    return cert, key


class TlsSite:
    """A one-page HTTPS server on loopback that records the SNI names and Host headers it saw (one
    SNI name per TLS handshake, so per connection). KEEP_ALIVE: HTTP/1.1, connections kept open."""

    def __init__(self, cert: Path, key: Path, *, keep_alive: bool = False) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str | None] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802
                site.hosts.append(self.headers.get("Host"))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    tmp = tmp_path_factory.mktemp("tls")
    certs = {name: certificate(tmp, name) for name in (HOST, "other.sandbox.test")}
    certs["both"] = certificate(tmp, HOST, "twin.sandbox.test")
    return certs


@pytest.fixture
def site(certs: dict[str, tuple[Path, Path]]) -> Iterator[TlsSite]:
    server = TlsSite(*certs[HOST])
    yield server
    server.close()


def fetcher(site: TlsSite, trusted: Path) -> SafeFetcher:
    return SafeFetcher(
        resolver=SandboxResolver(port=site.port),
        policy=AddressPolicy.sandbox([site.port]),
        user_agent="leadgen-test",
        timeout_s=5.0,
        max_bytes=100_000,
        max_redirects=2,
        ssl_context=ssl.create_default_context(cafile=str(trusted)),
    )


async def fetch(site: TlsSite, trusted: Path, url: str) -> str:
    async with fetcher(site, trusted) as f:
        return (await f.fetch(url)).text


def test_https_page_is_fetched_from_the_pinned_ip_with_the_host_as_sni(
    site: TlsSite, certs: dict[str, tuple[Path, Path]]
) -> None:
    text = asyncio.run(fetch(site, certs[HOST][0], f"https://{HOST}:{site.port}/"))
    assert "hello over tls" in text
    # the connection went to 127.0.0.1, but TLS and HTTP both named the site: the certificate
    # (which names only the host, not the address) verified
    assert site.sni == [HOST]
    assert site.hosts == [f"{HOST}:{site.port}"]


def test_a_certificate_for_another_name_is_refused(site: TlsSite, certs: dict[str, tuple[Path, Path]]) -> None:
    other = TlsSite(*certs["other.sandbox.test"])
    try:
        with pytest.raises(FetchUnreachable, match="(?i)certificate"):
            asyncio.run(fetch(other, certs["other.sandbox.test"][0], f"https://{HOST}:{other.port}/"))
    finally:
        other.close()
    assert other.hosts == []  # nothing was sent over the unverified connection


def test_a_certificate_nobody_trusts_is_refused(site: TlsSite, certs: dict[str, tuple[Path, Path]]) -> None:
    with pytest.raises(FetchUnreachable, match="(?i)certificate"):
        asyncio.run(fetch(site, certs["other.sandbox.test"][0], f"https://{HOST}:{site.port}/"))
    assert site.hosts == []


def test_a_kept_alive_connection_carries_only_requests_for_the_name_it_was_verified_for(
    certs: dict[str, tuple[Path, Path]],
) -> None:
    """Two names on one address and one certificate: each name gets its own connection (one TLS
    handshake each), and a name's later requests reuse it. The pool is keyed by the vetted IP, so
    without the TLS name in the key the twin's request would ride the first name's connection."""
    twin = "twin.sandbox.test"
    server = TlsSite(*certs["both"], keep_alive=True)
    urls = [f"https://{host}:{server.port}/" for host in (HOST, HOST, twin, HOST, twin)]

    async def go() -> list[str]:
        async with fetcher(server, certs["both"][0]) as f:
            return [(await f.fetch(url)).text for url in urls]

    try:
        assert all("hello over tls" in text for text in asyncio.run(go()))
    finally:
        server.close()
    assert server.hosts == [f"{h}:{server.port}" for h in (HOST, HOST, twin, HOST, twin)]
    assert server.sni == [HOST, twin]  # two connections for five requests, one per name
