"""The crawler: SSRF guard, SafeFetcher, robots.txt, domain limiter, page parser and crawl_site.

Real: every fetch goes over real loopback sockets with httpx to real servers: the website
simulator (`WebSim`), a "canary" SimServer standing in for an internal service that must never be
reached, and a raw socket server that streams unbounded or compressed bodies. robots.txt parsing
(protego), HTML parsing (selectolax), the SSRF checks, timeouts and the limiter's clock are real.
Simulated: DNS. `SandboxResolver` maps `*.sandbox.test` to 127.0.0.1 (and to the simulator's
port), and its override map plays a DNS record pointing at a private address. Because system DNS
cannot resolve `sandbox.test`, every request that reaches the simulator also proves the fetcher
connected to the address it vetted rather than resolving the name again.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import socketserver
import threading
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from leadgen_core.crawler import (
    AddressPolicy,
    BodyTooLarge,
    CrawlResult,
    DomainLimiter,
    RobotsCache,
    SafeFetcher,
    SandboxResolver,
    SystemResolver,
    TooManyRedirects,
    UnsupportedContentType,
    check_url,
    crawl_site,
    parse_page,
)
from leadgen_core.crawler.fetch import FetchTimeout
from leadgen_core.errors import BlockedAddress, FetchError
from leadgen_core.sandbox.base import SimResponse, SimServer
from leadgen_core.sandbox.web import WebSim

UA = "leadgen-bot/1.0 (+https://example.invalid/bot)"
SLOW_S = 10.0  # how long a `slow-` site takes to answer: far beyond any bound the tests put on a give-up
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class RawServer:
    """A bare TCP server answering every request the same way; counts the body bytes it sent."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sent = 0
        self.requests = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                outer.requests += 1
                try:
                    outer.respond(self.request)
                except OSError:
                    return  # the client hung up, as it should

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, sock: socket.socket) -> None:
        if self.mode == "endless":  # chunked, no Content-Length, up to 64 MB
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
            block = b"<p>" + b"x" * 65_000 + b"</p>"
            for _ in range(1000):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                self.sent += len(block)
        else:  # a gzip bomb: ~50 KB on the wire, 50 MB inflated
            body = gzip.compress(b"<p>" + b"0" * 50_000_000)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
            self.sent += len(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def canary() -> Iterator[SimServer]:
    """An "internal service" on loopback; any request reaching it is an SSRF."""
    server = SimServer()
    answer = SimResponse(200, "<html><body>internal secret</body></html>", content_type="text/html")
    server.route("GET", "/", lambda req: answer, prefix=True)
    with server:
        yield server


@pytest.fixture(scope="module")
def sim(canary: SimServer) -> Iterator[WebSim]:
    target = f"{canary.base_url}/internal-admin"
    with WebSim(seed=5, private_redirect_target=target, slow_delay_s=SLOW_S, crawl_delay_s=0.4) as server:
        assert isinstance(server, WebSim)
        yield server


@pytest.fixture(scope="module")
def endless() -> Iterator[RawServer]:
    server = RawServer("endless")
    yield server
    server.close()


@pytest.fixture(scope="module")
def bomb() -> Iterator[RawServer]:
    server = RawServer("bomb")
    yield server
    server.close()


def fetcher_for(
    sim: WebSim,
    *,
    overrides: Mapping[str, str | Sequence[str]] | None = None,
    extra_ports: Sequence[int] = (),
    timeout_s: float = 3.0,
    max_bytes: int = 2_000_000,
    max_redirects: int = 5,
) -> SafeFetcher:
    return SafeFetcher(
        resolver=SandboxResolver(port=sim.port, overrides=overrides),
        policy=AddressPolicy.sandbox([sim.port, *extra_ports]),
        user_agent=UA,
        timeout_s=timeout_s,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
    )


async def crawl(
    sim: WebSim,
    target: str,
    *,
    interval: float = 0.0,
    max_pages: int = 6,
    deadline: float = 10.0,
    user_agent: str = UA,
    keep_corpus: bool = False,
    **fetch_kw: Any,
) -> CrawlResult:
    async with fetcher_for(sim, **fetch_kw) as fetcher:
        return await crawl_site(
            target,
            fetcher=fetcher,
            robots=RobotsCache(fetcher=fetcher),
            limiter=DomainLimiter(interval),
            max_pages=max_pages,
            site_deadline_s=deadline,
            user_agent=user_agent,
            keep_corpus=keep_corpus,
        )


# --- a normal crawl ------------------------------------------------------------------------


def test_normal_site_crawl_collects_contacts_in_relevance_order(sim: WebSim) -> None:
    host = "robots-open-acme.sandbox.test"
    site = sim.site(host)
    result = run(crawl(sim, host, max_pages=4))
    assert result.status == "ok" and not result.thin
    assert [p.url.rsplit("/", 1)[1] for p in result.pages] == ["", "contact", "about", "team"]
    assert set(site.emails) <= set(result.emails)
    assert result.phones == ("+65" + site.phone.replace("+65", "").replace(" ", ""),)
    assert f"https://www.linkedin.com/company/{host.split('.')[0]}" in result.social_links
    assert result.text_chars == sum(p.text_chars for p in result.pages) > 400
    assert result.pages[0].title == site.company
    assert result.corpus is None
    # Irrelevant links (/blog, /privacy, the external partner) were never requested.
    assert sim.paths_for(host) == ["/robots.txt", "/", "/contact", "/about", "/team"]
    for request in sim.requests_for(host):
        assert request.headers["user-agent"] == UA
        assert request.headers["host"] == host  # pinned to 127.0.0.1, named by the Host header


def test_corpus_only_when_asked(sim: WebSim) -> None:
    result = run(crawl(sim, "robots-open-corpus.sandbox.test", keep_corpus=True))
    assert result.corpus is not None
    assert "# http://robots-open-corpus.sandbox.test/team" in result.corpus
    assert sim.site("robots-open-corpus.sandbox.test").people[0].name in result.corpus


def test_noemail_site_is_ok_but_thin(sim: WebSim) -> None:
    result = run(crawl(sim, "robots-open-x.sandbox.test"))
    assert result.status == "ok" and not result.thin
    quiet = run(crawl(sim, "noemail-x.sandbox.test"))
    assert quiet.status == "ok" and quiet.emails == () and quiet.thin


# --- robots.txt ------------------------------------------------------------------------------


def test_robots_disallowed_pages_are_never_requested(sim: WebSim) -> None:
    host = "robots-block-a.sandbox.test"
    result = run(crawl(sim, host))
    assert result.status == "ok"
    paths = sim.paths_for(host)
    assert "/team" not in paths and "/contact" not in paths
    assert "/about" in paths and "/careers" in paths
    assert sorted(result.robots_skipped) == [f"http://{host}/contact", f"http://{host}/team"]


def test_robots_rules_for_our_bot_only(sim: WebSim) -> None:
    host = "robots-bot-a.sandbox.test"
    ours = run(crawl(sim, host))
    assert ours.robots_skipped == (f"http://{host}/contact",)
    assert "/contact" not in sim.paths_for(host)
    other = run(crawl(sim, host, user_agent="someone-else/2.0"))
    assert other.robots_skipped == ()
    assert "/contact" in sim.paths_for(host)


def test_robots_deny_all_and_missing(sim: WebSim) -> None:
    denied = run(crawl(sim, "robots-deny-a.sandbox.test"))
    assert denied.status == "robots_disallowed"
    assert sim.paths_for("robots-deny-a.sandbox.test") == ["/robots.txt"]
    missing = run(crawl(sim, "robots-missing-a.sandbox.test"))
    assert missing.status == "ok" and "/team" in sim.paths_for("robots-missing-a.sandbox.test")


def test_robots_cached_per_host_and_bounded(sim: WebSim) -> None:
    async def go() -> list[int]:
        async with fetcher_for(sim) as fetcher:
            cache = RobotsCache(fetcher=fetcher, max_origins=2)
            rc0, rc1, rc2 = (f"http://normal-rc{i}.sandbox.test/about" for i in range(3))
            counts = []
            for batch in ([rc0, rc1, rc0, rc1, rc0], [rc2], [rc0], [rc1]):
                for url in batch:
                    assert await cache.can_fetch(url, UA)
                counts.append(cache.fetches)
            assert len(cache) == 2
            return counts

    # Two hosts, five checks: two fetches. rc2 evicts the least recently used (rc1), so rc0 is
    # still cached and rc1 must be fetched again.
    assert run(go()) == [2, 3, 3, 4]
    assert len(sim.requests_for("normal-rc0.sandbox.test")) == 1
    assert len(sim.requests_for("normal-rc1.sandbox.test")) == 2


def test_robots_cache_shared_across_loops_and_concurrent_callers(sim: WebSim) -> None:
    cache = RobotsCache(max_origins=10)  # process-wide: no fetcher of its own
    url = "http://normal-shared.sandbox.test/about"

    async def check(n: int) -> list[bool]:
        async with fetcher_for(sim) as fetcher:
            return await asyncio.gather(*(cache.can_fetch(url, UA, fetcher=fetcher) for _ in range(n)))

    assert run(check(5)) == [True] * 5
    assert run(check(1)) == [True]  # a second event loop, as another Dagster step would have
    assert cache.fetches == 1
    assert sim.paths_for("normal-shared.sandbox.test") == ["/robots.txt"]


def test_crawl_delay_larger_than_interval_is_honoured(sim: WebSim) -> None:
    t0 = time.monotonic()
    result = run(crawl(sim, "robots-delay-a.sandbox.test", interval=0.01, max_pages=3))
    elapsed = time.monotonic() - t0
    assert len(result.pages) == 3
    assert elapsed >= 2 * 0.4 - 0.02  # home, then two pages each after the 0.4 s crawl-delay


# --- SSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{canary}/",
        "http://10.0.0.5/",
        "http://[::1]:{canary}/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{canary}/",
        "http://0.0.0.0:{canary}/",
    ],
)
def test_ssrf_direct_addresses_refused(sim: WebSim, canary: SimServer, url: str) -> None:
    url = url.format(canary=canary.port)
    canary.reset_log()

    async def go() -> None:
        async with fetcher_for(sim) as fetcher:
            with pytest.raises(BlockedAddress):
                await fetcher.fetch(url)

    run(go())
    result = run(crawl(sim, url))
    assert result.status == "blocked"
    assert canary.log == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://normal-a.sandbox.test/",
        "file:///etc/passwd",
        "http://user:pw@normal-a.sandbox.test/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://localhost/",
        "http://under_score.sandbox.test/",
    ],
)
def test_ssrf_url_shapes_refused(url: str) -> None:
    with pytest.raises(BlockedAddress):
        check_url(url)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "224.0.0.1",
        "240.0.0.1",
        "192.0.0.192",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:10.0.0.1",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
        "ff02::1",
    ],
)
def test_address_policy_refuses(address: str) -> None:
    with pytest.raises(BlockedAddress):
        AddressPolicy().check(address, 80)


def test_address_policy_allows_public_and_allowlisted_only() -> None:
    AddressPolicy().check("93.184.216.34", 443)
    AddressPolicy().check("2606:4700::1111", 443)
    policy = AddressPolicy.sandbox([8123])
    policy.check("127.0.0.1", 8123)
    with pytest.raises(BlockedAddress):
        policy.check("127.0.0.1", 8124)
    with pytest.raises(BlockedAddress):
        AddressPolicy(allowlist=frozenset({("169.254.169.254", 80)})).check("169.254.169.254", 80)


def test_ssrf_through_redirect_to_private_address(sim: WebSim, canary: SimServer) -> None:
    canary.reset_log()
    host = "private-redirect-a.sandbox.test"
    result = run(crawl(sim, host, extra_ports=()))
    assert result.status == "blocked"
    assert "127.0.0.1" in result.reason and "loopback" in result.reason
    assert sim.paths_for(host) == ["/robots.txt", "/"]
    assert canary.log == []  # the redirect target was never contacted


def test_ssrf_through_redirect_to_metadata(sim: WebSim) -> None:
    result = run(crawl(sim, "metadata-redirect-a.sandbox.test"))
    assert result.status == "blocked"
    assert "169.254.169.254" in result.reason and "metadata" in result.reason


@pytest.mark.parametrize(
    "answer", ["10.1.2.3", "127.0.0.1", ["93.184.216.34", "192.168.0.10"], "::ffff:169.254.169.254"]
)
def test_ssrf_through_dns_naming_a_private_address(sim: WebSim, answer: str | list[str]) -> None:
    result = run(crawl(sim, "http://evil.example/", overrides={"evil.example": answer}))
    assert result.status == "blocked"
    assert "evil.example resolves to a blocked address" in result.reason


# --- size, type, redirects, availability -----------------------------------------------------


def test_oversized_page_refused_by_content_length(sim: WebSim) -> None:
    result = run(crawl(sim, "huge-a.sandbox.test"))
    assert result.status == "too_large" and result.pages == ()

    async def go() -> BodyTooLarge:
        async with fetcher_for(sim) as fetcher:
            with pytest.raises(BodyTooLarge) as info:
                await fetcher.fetch("http://huge-a.sandbox.test/")
            return info.value

    err = run(go())
    assert err.bytes_read == 0 and err.limit == 2_000_000  # refused before reading the body


def test_oversized_stream_abandoned_early(sim: WebSim, endless: RawServer) -> None:
    async def go() -> BodyTooLarge:
        async with fetcher_for(sim, extra_ports=[endless.port], max_bytes=100_000) as fetcher:
            with pytest.raises(BodyTooLarge) as info:
                await fetcher.fetch(f"http://127.0.0.1:{endless.port}/")
            return info.value

    err = run(go())
    assert 100_000 < err.bytes_read <= 100_000 + 70_000
    time.sleep(0.2)
    assert endless.sent < 32_000_000  # far less than the 65 MB the server would have sent


def test_compression_bomb_cut_off(sim: WebSim, bomb: RawServer) -> None:
    async def go() -> BodyTooLarge:
        async with fetcher_for(sim, extra_ports=[bomb.port], max_bytes=200_000) as fetcher:
            with pytest.raises(BodyTooLarge) as info:
                await fetcher.fetch(f"http://127.0.0.1:{bomb.port}/")
            return info.value

    assert run(go()).bytes_read <= 200_001


@pytest.mark.parametrize(
    ("host", "ctype"), [("pdf-a.sandbox.test", "application/pdf"), ("json-a.sandbox.test", "application/json")]
)
def test_non_html_home(sim: WebSim, host: str, ctype: str) -> None:
    assert run(crawl(sim, host)).status == "not_html"

    async def go() -> UnsupportedContentType:
        async with fetcher_for(sim) as fetcher:
            with pytest.raises(UnsupportedContentType) as info:
                await fetcher.fetch(f"http://{host}/")
            return info.value

    assert run(go()).content_type == ctype


def test_redirect_loop_is_bounded(sim: WebSim) -> None:
    host = "loop-b.sandbox.test"
    result = run(crawl(sim, host, max_redirects=3))
    assert result.status == "down" and "redirect" in result.reason
    assert sim.paths_for(host) == ["/robots.txt", "/", "/r1", "/r2", "/"]  # 1 request + 3 redirects

    async def go() -> None:
        async with fetcher_for(sim, max_redirects=3) as fetcher:
            with pytest.raises(TooManyRedirects):
                await fetcher.fetch(f"http://{host}/")

    run(go())


def test_down_site(sim: WebSim) -> None:
    host = "down-a.sandbox.test"
    result = run(crawl(sim, host))
    assert result.status == "down" and result.thin and "503" in result.reason
    assert sim.paths_for(host) == ["/robots.txt"]  # RFC 9309: unreachable robots.txt => crawl nothing


def test_unknown_domain_is_down_without_leaving_the_sandbox(sim: WebSim) -> None:
    result = run(crawl(sim, "no-such-company.example"))
    assert result.status == "down" and "DNS" in result.reason
    assert run(crawl(sim, "   ")).status == "no_website"


def test_slow_site_times_out_per_request(sim: WebSim) -> None:
    t0 = time.monotonic()
    result = run(crawl(sim, "slow-a.sandbox.test", timeout_s=0.3))
    assert result.status == "timeout"
    assert time.monotonic() - t0 < 5.0  # gave up at the 0.3 s timeout, never waited the site's 10 s

    async def go() -> None:
        async with fetcher_for(sim, timeout_s=0.3) as fetcher:
            with pytest.raises(FetchTimeout):
                await fetcher.fetch("http://slow-a.sandbox.test/")

    run(go())


def test_site_deadline_bounds_the_whole_crawl(sim: WebSim) -> None:
    t0 = time.monotonic()
    # each request may take 20 s, longer than the site's 10 s: only the 0.4 s deadline can stop it early
    result = run(crawl(sim, "slow-b.sandbox.test", timeout_s=20.0, deadline=0.4))
    assert result.status == "timeout" and "deadline" in result.reason
    assert time.monotonic() - t0 < 5.0


# --- hostile HTML ----------------------------------------------------------------------------


def test_hostile_site_parsed_safely(sim: WebSim) -> None:
    host = "hostile-a.sandbox.test"
    result = run(crawl(sim, host, keep_corpus=True))
    assert result.status in ("ok", "thin")
    assert f"info@{host}" in result.emails
    assert f"hidden@{host}" not in result.emails  # only in an HTML comment
    assert result.corpus is not None
    assert "ignore previous instructions" not in result.corpus.lower()
    assert "deep content" in result.corpus


def test_parse_page_survives_extreme_nesting() -> None:
    html = "<title>Deep</title><p>ceo@deep.example</p>" + "<div>" * 100_000 + "x" + "</div>" * 100_000
    t0 = time.monotonic()
    page = parse_page(html, "http://deep.example/")
    assert time.monotonic() - t0 < 3.0
    assert page.title == "Deep" and page.emails == ("ceo@deep.example",)


# --- domain limiter --------------------------------------------------------------------------


def test_limiter_spaces_one_domain_and_not_others() -> None:
    interval, slow = 0.25, 2.0

    async def go() -> tuple[list[float], float, list[float], list[float], float]:
        limiter = DomainLimiter(interval)
        t0 = time.monotonic()
        same = await asyncio.gather(*(limiter.wait("acme.example") for _ in range(3)))
        spaced = time.monotonic() - t0
        # two other domains, their next slots booked `slow` seconds ahead (as a robots.txt crawl-delay does)
        fresh = [
            await limiter.wait("a.example", min_interval_s=slow),
            await limiter.wait("b.example", min_interval_s=slow),
        ]
        t1 = time.monotonic()
        both = await asyncio.gather(limiter.wait("a.example"), limiter.wait("www.B.example."))
        return same, spaced, fresh, both, time.monotonic() - t1

    same, spaced, fresh, both, together = run(go())
    # the delays it booked (what `wait` returns): one interval apart for one domain, whatever the machine's load
    # adds between the bookings (they are made in one pass of the event loop, microseconds apart)
    first, second, third = sorted(same)
    assert first == 0 and interval - 0.1 < second <= interval and 2 * interval - 0.1 < third <= 2 * interval
    assert fresh == [0, 0]  # other domains never wait on acme's slots
    # "www.B.example." is b.example: each waits out its own domain's slot, not the other's after it
    assert all(slow - 0.5 < d <= slow for d in both)
    assert spaced >= 2 * interval - 0.01  # the booked delays were slept
    assert slow - 0.01 <= together < 1.75 * slow  # concurrent, not serialized (2 x 2 s)


def test_limiter_spaces_real_fetches_and_is_bounded(sim: WebSim) -> None:
    t0 = time.monotonic()
    result = run(crawl(sim, "robots-open-polite.sandbox.test", interval=0.2, max_pages=3))
    assert len(result.pages) == 3
    assert time.monotonic() - t0 >= 2 * 0.2 - 0.01
    limiter = DomainLimiter(0.0, max_domains=10)

    async def fill() -> None:
        for i in range(100):
            await limiter.wait(f"site{i}.example")

    run(fill())
    assert len(limiter) == 10


# --- parse_page ------------------------------------------------------------------------------

BASE = "http://acme.sandbox.test/contact"


@pytest.mark.parametrize(
    ("html", "emails"),
    [
        ("<p>Write to Sales@Acme.com today.</p>", ("sales@acme.com",)),
        ('<a href="mailto:info@acme.com?subject=Hi">mail</a>', ("info@acme.com",)),
        ("<p>john [at] acme [dot] com.sg</p>", ("john@acme.com.sg",)),
        ("<p>jane.doe (at) acme (dot) io</p>", ("jane.doe@acme.io",)),
        ('<img alt="logo@2x.png"><p>logo@2x.png</p>', ()),
        ("<script>var e='x@evil.com'</script><p>none</p>", ()),
        ("<p hidden>ghost@acme.com</p>", ()),
    ],
)
def test_parse_emails(html: str, emails: tuple[str, ...]) -> None:
    assert parse_page(html, BASE).emails == emails


@pytest.mark.parametrize(
    ("html", "phones"),
    [
        ("<p>Call +65 6123 4567</p>", ("+6561234567",)),
        ("<p>(+65) 6234-5678</p>", ("+6562345678",)),
        ("<p>0065 9123 4567</p>", ("+6591234567",)),
        ('<a href="tel:61234567">call</a>', ("+6561234567",)),
        ('<a href="tel:+44%2020%207946%200958">uk</a>', ("+442079460958",)),
        ("<p>Ref +65 123, year 2024</p>", ()),
    ],
)
def test_parse_phones(html: str, phones: tuple[str, ...]) -> None:
    assert parse_page(html, BASE).phones == phones


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("https://www.linkedin.com/company/acme/", "https://www.linkedin.com/company/acme"),
        ("https://sg.linkedin.com/in/jane-tan?trk=x", "https://sg.linkedin.com/in/jane-tan"),
        ("https://facebook.com/acmesg", "https://facebook.com/acmesg"),
        ("https://x.com/acme", "https://x.com/acme"),
        ("https://www.facebook.com/sharer/sharer.php?u=acme", None),
        ("https://twitter.com/intent/tweet?text=hi", None),
        ("https://notlinkedin.com/company/acme", None),
    ],
)
def test_parse_social_links(href: str, expected: str | None) -> None:
    page = parse_page(f'<a href="{href}">s</a>', BASE)
    assert page.social_links == ((expected,) if expected else ())


@pytest.mark.parametrize(
    ("html", "title"),
    [
        ("<html><head><title>  Acme \n Pte  Ltd </title></head></html>", "Acme Pte Ltd"),
        ("<body><h1>Only a heading</h1></body>", "Only a heading"),
        ("<title>" + "T" * 1000 + "</title>", "T" * 300),
        ("", ""),
    ],
)
def test_parse_title(html: str, title: str) -> None:
    assert parse_page(html, BASE).title == title


def test_parse_links_text_and_caps() -> None:
    html = (
        "<style>.a{color:red}</style><script>alert('x')</script>"
        '<a href="/about#team">About</a><a href="javascript:alert(1)">js</a>'
        '<a href="data:text/html,hi">d</a><a href="https://other.example/x">o</a>'
        + "".join(f'<a href="/p{i}">p</a>' for i in range(500))
        + "<p>"
        + "word " * 10_000
        + "</p>"
    )
    page = parse_page(html, BASE)
    assert page.links[:2] == ("http://acme.sandbox.test/about", "https://other.example/x")
    assert all(link.startswith("http") for link in page.links)
    assert len(page.links) == 200
    assert "alert" not in page.text and "color" not in page.text
    assert page.text_chars == len(page.text) == 20_000


def test_no_cookie_is_kept_or_sent_between_pages_or_sites() -> None:
    """Requests go to the pinned IP: a cookie jar would hand one site's cookies to every other site
    on the same address. The fetcher keeps none (it sends requests without an httpx client)."""
    server = SimServer()
    seen: list[str | None] = []

    def page(req: Any) -> SimResponse:
        seen.append(req.headers.get("cookie"))
        return SimResponse(200, "<html><body>hi</body></html>", {"Set-Cookie": "sid=secret; Path=/"}, "text/html")

    server.route("GET", "/", page, prefix=True)
    with server:
        fetcher = SafeFetcher(
            resolver=SandboxResolver(overrides={"a.example.com": "127.0.0.1", "b.example.com": "127.0.0.1"}),
            policy=AddressPolicy.sandbox([server.port]),
            user_agent=UA,
            timeout_s=3.0,
            max_bytes=100_000,
            max_redirects=2,
        )

        async def fetch_all() -> list[int]:
            async with fetcher:
                urls = [f"http://{host}.example.com:{server.port}{path}" for host in "ab" for path in ("/", "/x")]
                return [(await fetcher.fetch(url)).status for url in urls]

        assert run(fetch_all()) == [200, 200, 200, 200]
    assert seen == [None, None, None, None]


def test_system_resolver_reuses_an_answer_and_the_guard_still_checks_it(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"a.example.com": "93.184.216.34", "evil.example.com": "10.0.0.7"}
    calls: list[str] = []

    def fake_getaddrinfo(host: str, port: object, **kwargs: object) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    resolver = SystemResolver(ttl_s=30.0)
    fetcher = SafeFetcher(
        resolver=resolver, policy=AddressPolicy(), user_agent=UA, timeout_s=1.0, max_bytes=1000, max_redirects=1
    )

    async def scenario() -> None:
        async with fetcher:
            for path in ("/", "/about", "/team"):
                _, ip, _ = await fetcher.vet(f"https://a.example.com{path}")
                assert ip == "93.184.216.34"
            for _ in range(2):  # a cached answer naming a private address is refused every time
                with pytest.raises(BlockedAddress):
                    await fetcher.vet("https://evil.example.com/")
            for _ in range(2):  # failures are not cached
                with pytest.raises(FetchError):
                    await resolver.resolve("missing.example.com")

    run(scenario())
    assert calls == ["a.example.com", "evil.example.com", "missing.example.com", "missing.example.com"]
    expired = SystemResolver(ttl_s=0.0)
    run(expired.resolve("a.example.com"))
    run(expired.resolve("a.example.com"))
    assert expired.lookups == 2
