"""`SafeFetcher`: one GET with the SSRF guard on every hop, a byte cap and a content-type check.

Per hop: vet the URL (`ssrf.check_url`), resolve the host, check every resolved address with the
`AddressPolicy`, then connect to the vetted IP itself (`scheme://<ip>:<port>/path` with the
`Host` header, and the host as TLS `server_hostname`), so a DNS answer that changes between the
check and the connect (rebinding) is never used. Redirects are followed by hand, each hop re-vetted.
Bodies are streamed and abandoned past `max_bytes`; non-HTML answers are refused before their
body is read. Non-2xx final answers are returned (robots.txt needs the 4xx/5xx distinction).
"""

from __future__ import annotations

import asyncio
import codecs
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from leadgen_core.crawler.ssrf import DEFAULT_PORTS, AddressPolicy, Resolver, Target, check_url
from leadgen_core.errors import BlockedAddress, FetchError, ResponseTooLarge
from leadgen_core.settings import Settings
from leadgen_core.vendors.pool import shared_ssl_context

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
ROBOTS_TYPES = frozenset({"text/plain", "text/html"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT_HEADER = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.5"
ACCEPT_ENCODING = "gzip, deflate"
# Text codecs Python has that no web page is written in; `idna` and `undefined` also refuse
# errors="replace". Bytes-to-bytes codecs (base64, zlib ...) are refused by a decode probe.
NON_WEB_CODECS = frozenset({"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape"})
# wbits for zlib that accepts both gzip and zlib framing.
ZLIB_AUTO_WBITS = zlib.MAX_WBITS | 32
READ_CHUNK = 65_536  # bytes handed over at a time: a body is abandoned within one chunk past max_bytes
# An idle kept-alive connection is closed after this long: under Apache httpd's default
# KeepAliveTimeout (5 s, https://httpd.apache.org/docs/2.4/mod/core.html#keepalivetimeout), so we
# close first rather than send into a connection the server is closing. A site's pages come
# CRAWLER_DOMAIN_INTERVAL_S (0.5 s by default) apart, so they share one connection.
KEEPALIVE_S = 4.0


def pool_keyed_by_tls_name() -> bool:
    """True when aiohttp pools connections by the TLS server name too (`ConnectionKey.server_hostname`,
    aiohttp pull request 12835, in the 3.14 series). Only then may a connection be kept alive: the pool is
    keyed by the vetted IP, and without the name a TLS connection verified for one host could
    carry a request for another host on the same address."""
    from aiohttp.client_reqrep import ConnectionKey

    return "server_hostname" in ConnectionKey._fields


class FetchTimeout(FetchError):
    """The request did not complete within the per-request timeout."""


class FetchUnreachable(FetchError):
    """DNS, connect or protocol failure: nothing usable came back."""


class TooManyRedirects(FetchError):
    """The redirect chain was longer than allowed (or looped)."""


class UnsupportedContentType(FetchError):
    """The answer is not a content type the caller accepts (PDF, JSON, images...)."""

    def __init__(self, message: str, *, content_type: str) -> None:
        super().__init__(message)
        self.content_type = content_type


class UnsupportedCharset(UnsupportedContentType):
    """The answer's charset names a codec that does not decode text (base64, rot13, zlib, idna ...)."""


class BodyTooLarge(ResponseTooLarge):
    """ResponseTooLarge that says how much was read before giving up."""

    def __init__(self, message: str, *, bytes_read: int, limit: int) -> None:
        super().__init__(message)
        self.bytes_read = bytes_read
        self.limit = limit


@dataclass(frozen=True)
class FetchResult:
    """A completed fetch. `text` is empty for non-2xx answers."""

    url: str
    final_url: str
    status: int
    content_type: str
    text: str
    bytes_read: int
    redirects: tuple[str, ...]


def _media_type(header: str) -> tuple[str, str | None]:
    """("text/html", "utf-8") from "text/html; charset=UTF-8"."""
    media, _, params = header.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media.strip().lower(), charset


def _text_codec(charset: str | None, url: str, media: str) -> str:
    """The codec to decode a body with: utf-8 when the label is missing or unknown (as browsers
    fall back); UnsupportedCharset when it names a codec that is no text encoding at all.

    Python's codec registry also holds bytes-to-bytes and special codecs (`base64`, `rot13`,
    `zlib`, `uu`, `hex`, `idna` ...); a hostile `charset=base64` used to escape as LookupError or
    UnicodeError, fail the company, and have it re-crawled every night.
    """
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"
    try:
        b"x".decode(codec)  # LookupError for a codec that is not a text encoding
    except (LookupError, UnicodeError):
        codec = ""
    if not codec or codec in NON_WEB_CODECS:
        raise UnsupportedCharset(f"{url}: charset {charset!r} is not a text encoding", content_type=media)
    return codec


def _decode(body: bytes, codec: str, url: str, media: str) -> str:
    try:
        return body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, ValueError) as exc:  # a codec that refuses errors="replace"
        raise UnsupportedCharset(f"{url}: cannot decode as {codec}: {type(exc).__name__}", content_type=media) from exc


def _pinned_url(target: Target, ip: str) -> URL:
    host = f"[{ip}]" if ":" in ip else ip
    return URL(f"{target.scheme}://{host}:{target.port}{target.path}", encoded=True)


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == DEFAULT_PORTS[target.scheme] else f"{host}:{target.port}"


class SafeFetcher:
    """Async GETs through the SSRF guard. Use as `async with SafeFetcher(...) as fetcher:`."""

    def __init__(
        self,
        *,
        resolver: Resolver,
        policy: AddressPolicy,
        user_agent: str,
        timeout_s: float,
        max_bytes: int,
        max_redirects: int,
        ssl_context: ssl.SSLContext | None = None,
        keepalive: bool = True,
    ) -> None:
        self.resolver = resolver
        self.policy = policy
        self.user_agent = user_agent
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        # Keep-alive per vetted address and TLS name (see `pool_keyed_by_tls_name`): a site's robots.txt
        # and pages share one connection, which saves the site handshakes and the crawl ~1 ms of
        # CPU a site (bench.crawl_cpu). A plain-HTTP connection may carry requests for two hosts
        # on the same vetted IP and port: the same server answers both either way. A response not
        # read to its end (a body past max_bytes, a refused type) closes its connection.
        # No proxy from the environment (trust_env=False): it would resolve names itself,
        # bypassing the guard. No cookie jar: keyed by the pinned IP, it would hand one site's
        # cookies to every other site on the same address. Bodies are not decompressed by the
        # client (`_decoded` does it, capped). aiohttp rather than httpx: a 235 KB page costs
        # 0.38 ms of CPU through it against 1.07 ms through httpx's transport (32 in flight,
        # loopback), and the crawl reads ~5 such pages a company.
        self._keepalive = keepalive and pool_keyed_by_tls_name()
        self._ssl = ssl_context or shared_ssl_context(trust_env=False)  # not a CA bundle load (20 ms) per stage
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver, policy: AddressPolicy) -> SafeFetcher:
        return cls(
            resolver=resolver,
            policy=policy,
            user_agent=settings.crawler_user_agent,
            timeout_s=settings.crawler_timeout_s,
            max_bytes=settings.crawler_max_bytes,
            max_redirects=settings.crawler_max_redirects,
        )

    async def __aenter__(self) -> SafeFetcher:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        """The session of the running event loop (a fetcher may serve several loops in turn)."""
        session, loop = self._session, asyncio.get_running_loop()
        if session is None or session.closed or self._session_loop is not loop:
            reuse: dict[str, Any] = {"keepalive_timeout": KEEPALIVE_S} if self._keepalive else {"force_close": True}
            connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl, use_dns_cache=False, **reuse)
            session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(), timeout=self._timeout, raise_for_status=False,
            )  # fmt: skip
            self._session, self._session_loop = session, loop
        return session

    async def vet(self, url: str) -> tuple[Target, str, int]:
        """Check a URL and its resolved addresses; return the target and the (ip, port) to connect to."""
        target = check_url(url)
        port = self.resolver.port_for(target.host, target.port)
        addresses = await self.resolver.resolve(target.host)
        if not addresses:
            raise FetchUnreachable(f"{target.host}: no addresses")
        # Every address is checked, not just the first: a mixed answer is a rebinding attempt.
        for address in addresses:
            try:
                self.policy.check(address, port)
            except BlockedAddress as exc:
                raise BlockedAddress(f"{target.url}: {target.host} resolves to a blocked address ({exc})") from exc
        return target, addresses[0], port

    async def fetch(self, url: str, *, accept: frozenset[str] = HTML_TYPES, utf8: bool = False) -> FetchResult:
        """GET url following redirects by hand; raises FetchError subclasses on refusal or failure.

        UTF8 decodes the body as UTF-8 whatever charset it declares (robots.txt, RFC 9309 2.3).
        """
        redirects: list[str] = []
        current = url
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    result, location = await self._hop(current, accept=accept, utf8=utf8)
            except TimeoutError as exc:
                raise FetchTimeout(f"{current}: no complete answer within {self.timeout_s:g}s") from exc
            if location is None:
                return FetchResult(
                    url=url,
                    final_url=current,
                    status=result.status,
                    content_type=result.content_type,
                    text=result.text,
                    bytes_read=result.bytes_read,
                    redirects=tuple(redirects),
                )
            if len(redirects) >= self.max_redirects:
                raise TooManyRedirects(f"{url}: more than {self.max_redirects} redirects (last to {location})")
            redirects.append(location)
            current = location

    async def _hop(self, url: str, *, accept: frozenset[str], utf8: bool) -> tuple[FetchResult, str | None]:
        """One request; returns the result and the absolute redirect target, if any."""
        target, ip, port = await self.vet(url)
        try:
            pinned = _pinned_url(replace(target, port=port), ip)
        except ValueError as exc:
            raise FetchError(f"malformed URL {url!r}: {exc}") from exc
        headers = {
            "Host": _host_header(target),
            "User-Agent": self.user_agent,
            "Accept": ACCEPT_HEADER,
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        tls_name = target.host if target.scheme == "https" and not target.ip_literal else None
        try:
            async with self._client().get(
                pinned, headers=headers, allow_redirects=False, server_hostname=tls_name
            ) as resp:
                media, charset = _media_type(resp.headers.get("content-type", ""))
                location = resp.headers.get("location")
                if resp.status in REDIRECT_STATUSES and location:
                    empty = FetchResult(url, url, resp.status, media, "", 0, ())
                    return empty, urljoin(url, location.strip())
                if not 200 <= resp.status < 300:
                    return FetchResult(url, url, resp.status, media, "", 0, ()), None
                if media not in accept:
                    raise UnsupportedContentType(
                        f"{url}: content type {media or '(none)'!r} is not one of {sorted(accept)}",
                        content_type=media,
                    )
                codec = "utf-8" if utf8 else _text_codec(charset, url, media)
                body = await self._read_capped(resp, url)
                status = resp.status
        except (aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError) as exc:
            raise FetchTimeout(f"{url}: timed out ({type(exc).__name__})") from exc
        except aiohttp.InvalidURL as exc:
            raise FetchError(f"{url}: unusable URL ({exc})") from exc
        except aiohttp.ClientError as exc:
            raise FetchUnreachable(f"{url}: {type(exc).__name__}: {exc}") from exc
        text = _decode(body, codec, url, media)
        return FetchResult(url, url, status, media, text, len(body), ()), None

    async def _read_capped(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BodyTooLarge(
                f"{url}: Content-Length {declared} exceeds the {self.max_bytes}-byte limit",
                bytes_read=0,
                limit=self.max_bytes,
            )
        chunks: list[bytes] = []
        total = 0
        async for chunk in self._decoded(resp, url):
            total += len(chunk)
            if total > self.max_bytes:
                raise BodyTooLarge(
                    f"{url}: body exceeds the {self.max_bytes}-byte limit (stopped after {total} bytes)",
                    bytes_read=total,
                    limit=self.max_bytes,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _decoded(self, resp: aiohttp.ClientResponse, url: str) -> AsyncIterator[bytes]:
        """The body, decompressed here rather than by the client so a compression bomb is cut off
        after max_bytes of output instead of being inflated a whole network chunk at a time."""
        encoding = resp.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            async for raw in resp.content.iter_chunked(READ_CHUNK):
                yield raw
            return
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise FetchUnreachable(f"{url}: unsupported Content-Encoding {encoding!r}")
        inflater = zlib.decompressobj(ZLIB_AUTO_WBITS)
        async for raw in resp.content.iter_chunked(READ_CHUNK):
            data = raw
            while data:
                try:
                    # At most one byte past the limit per call: enough to detect the overflow.
                    out = inflater.decompress(data, self.max_bytes + 1)
                except zlib.error as exc:
                    raise FetchUnreachable(f"{url}: corrupt {encoding} body: {exc}") from exc
                if out:
                    yield out
                data = inflater.unconsumed_tail
