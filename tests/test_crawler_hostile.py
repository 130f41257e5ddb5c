"""The crawler against hostile answers (codec names as charsets, redirects to non-web URLs) and
the address guard's extra ranges and port rule.

Real: a loopback HTTP server (SimServer) answering per Host header, the SafeFetcher with its SSRF
guard, robots.txt handling and `crawl_site`, over real sockets. Simulated: DNS (SandboxResolver
maps `*.sandbox.test` to the server). Each hostile site must end in a clean CrawlResult with a
reason, never an exception (which failed the company and had it re-crawled every night).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from leadgen_core.crawler import AddressPolicy, DomainLimiter, RobotsCache, SafeFetcher, SandboxResolver, crawl_site
from leadgen_core.crawler.crawl import CrawlResult
from leadgen_core.crawler.fetch import UnsupportedCharset
from leadgen_core.errors import BlockedAddress, FetchError
from leadgen_core.sandbox.base import SimRequest, SimResponse, SimServer
from leadgen_core.settings import Settings

HOME = "<html><head><title>Acme</title></head><body>Hello <a href='/contact'>contact us</a></body></html>"
CONTACT = "<html><body>Write to sales@acme.example</body></html>"
ROBOTS = "User-agent: *\nDisallow: /private\n"
# Names Python's codec registry knows that are no text encoding (or none a web page uses).
CODEC_CHARSETS = ["base64", "rot13", "zlib", "uu", "idna", "hex", "bz2", "quopri", "punycode", "undefined"]
NON_WEB_TARGETS = {
    "js": "javascript:alert(document.cookie)",
    "data": "data:text/html;base64,PGI+eDwvYj4=",
    "mailto": "mailto:root@acme.example",
}


def _site(req: SimRequest) -> SimResponse:
    label = (req.header("host") or "").split(".")[0]
    kind, _, arg = label.partition("--")
    if kind == "page" and req.path == "/":
        return SimResponse(200, HOME.encode(), content_type=f"text/html; charset={arg}")
    if kind == "subpage" and req.path == "/contact":
        return SimResponse(200, CONTACT.encode(), content_type=f"text/html; charset={arg}")
    if kind == "robots" and req.path == "/robots.txt":
        return SimResponse(200, ROBOTS.encode(), content_type=f"text/plain; charset={arg}")
    if kind == "redirect" and req.path == "/":
        return SimResponse(302, b"", headers={"Location": NON_WEB_TARGETS[arg]}, content_type="text/html")
    if kind == "robotsredirect" and req.path == "/robots.txt":
        return SimResponse(302, b"", headers={"Location": NON_WEB_TARGETS[arg]}, content_type="text/html")
    if req.path == "/robots.txt":
        return SimResponse(200, ROBOTS, content_type="text/plain")
    return SimResponse(200, CONTACT if req.path == "/contact" else HOME, content_type="text/html; charset=utf-8")


@pytest.fixture(scope="module")
def hostile() -> Iterator[SimServer]:
    server = SimServer()
    server.route("GET", "/", _site, prefix=True)
    with server:
        yield server


def _fetcher(server: SimServer) -> SafeFetcher:
    return SafeFetcher(
        resolver=SandboxResolver(port=server.port),
        policy=AddressPolicy.sandbox([server.port]),
        user_agent="leadgen-bot/1.0",
        timeout_s=3.0,
        max_bytes=200_000,
        max_redirects=3,
    )


def crawl(server: SimServer, host: str) -> CrawlResult:
    async def go() -> CrawlResult:
        async with _fetcher(server) as fetcher:
            return await crawl_site(
                host, fetcher=fetcher, robots=RobotsCache(fetcher=fetcher), limiter=DomainLimiter(0.0),
                max_pages=3, site_deadline_s=10.0, user_agent="leadgen-bot/1.0", keep_corpus=False,
            )  # fmt: skip

    return asyncio.run(go())


@pytest.mark.parametrize("charset", CODEC_CHARSETS)
def test_a_codec_charset_on_the_home_page_is_a_clean_not_html(hostile: SimServer, charset: str) -> None:
    result = crawl(hostile, f"page--{charset}.sandbox.test")
    assert result.status == "not_html" and charset in result.reason, result

    async def go() -> None:
        async with _fetcher(hostile) as fetcher:
            with pytest.raises(UnsupportedCharset):
                await fetcher.fetch(f"http://page--{charset}.sandbox.test/")

    asyncio.run(go())


@pytest.mark.parametrize("charset", CODEC_CHARSETS)
def test_a_codec_charset_on_a_sub_page_spoils_only_that_page(hostile: SimServer, charset: str) -> None:
    result = crawl(hostile, f"subpage--{charset}.sandbox.test")
    assert result.status in ("ok", "thin") and len(result.pages) == 1, result
    assert any("/contact" in e and charset in e for e in result.page_errors), result.page_errors


@pytest.mark.parametrize("charset", CODEC_CHARSETS)
def test_robots_txt_is_read_as_utf8_whatever_its_label(hostile: SimServer, charset: str) -> None:
    # RFC 9309 2.3: robots.txt is UTF-8, so its rules still apply under a hostile label.
    result = crawl(hostile, f"robots--{charset}.sandbox.test")
    assert result.status in ("ok", "thin") and len(result.pages) == 2, result
    assert "1 page(s)" not in result.reason


@pytest.mark.parametrize("target", sorted(NON_WEB_TARGETS))
def test_a_redirect_to_a_non_web_url_is_a_clean_failure(hostile: SimServer, target: str) -> None:
    for kind in ("redirect", "robotsredirect"):
        result = crawl(hostile, f"{kind}--{target}.sandbox.test")
        assert result.status in ("down", "blocked") and result.reason, result
        assert result.pages == ()

    async def go() -> None:
        async with _fetcher(hostile) as fetcher:
            with pytest.raises(FetchError):
                await fetcher.fetch(f"http://redirect--{target}.sandbox.test/")

    asyncio.run(go())


# --- the address guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("192.0.0.8", "IETF protocol assignment"),
        ("192.0.0.255", "IETF protocol assignment"),
        ("fec0::1", "site-local"),
        ("feff:ffff::1", "site-local"),
        ("::ffff:192.0.0.9", "IETF protocol assignment"),  # the same, embedded in IPv6
    ],
)
def test_guard_refuses_ranges_python_counts_as_global(address: str, why: str) -> None:
    with pytest.raises(BlockedAddress, match=why):
        AddressPolicy().check(address, 80)


@pytest.mark.parametrize("port", [22, 8080, 6379, 9200, 1])
def test_guard_refuses_odd_ports_on_public_hosts(port: int) -> None:
    with pytest.raises(BlockedAddress, match="CRAWLER_ALLOWED_PORTS"):
        AddressPolicy().check("93.184.216.34", port)
    AddressPolicy().check("93.184.216.34", 443)  # the web's own ports stay open
    AddressPolicy(allowed_ports=frozenset({80, 443, port})).check("93.184.216.34", port)


def test_allowed_ports_come_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRAWLER_ALLOWED_PORTS", "80,443,8443")
    policy = AddressPolicy.from_settings(Settings())
    policy.check("93.184.216.34", 8443)
    with pytest.raises(BlockedAddress):
        policy.check("93.184.216.34", 8080)
    for bad in ("80,http", "0", "70000", ""):
        monkeypatch.setenv("CRAWLER_ALLOWED_PORTS", bad)
        with pytest.raises(ValueError, match="CRAWLER_ALLOWED_PORTS"):
            Settings()


def test_a_public_host_on_an_odd_port_is_never_contacted(hostile: SimServer) -> None:
    # DNS says public, the URL names the port the loopback server really listens on: without the
    # port rule the fetcher would connect (the address is public, the port arbitrary).
    hostile.reset_log()

    async def go() -> None:
        async with SafeFetcher(
            resolver=SandboxResolver(overrides={"shop.example": "93.184.216.34"}),
            policy=AddressPolicy(),
            user_agent="leadgen-bot/1.0", timeout_s=1.0, max_bytes=10_000, max_redirects=0,
        ) as fetcher:  # fmt: skip
            with pytest.raises(BlockedAddress, match=f"port {hostile.port} is not allowed"):
                await fetcher.fetch(f"http://shop.example:{hostile.port}/")

    asyncio.run(go())
    assert hostile.log == []


def test_sandbox_loopback_ports_still_work(hostile: SimServer) -> None:
    result = crawl(hostile, "plain.sandbox.test")
    assert result.status in ("ok", "thin") and len(result.pages) == 2, result
