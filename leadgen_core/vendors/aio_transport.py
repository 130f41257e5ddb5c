"""Vendor requests over aiohttp, to spend less CPU per request.

The vendor clients speak httpx (`request_json`, `httpx.Response`, httpx's exception classes) and
the OpenAI SDK speaks httpx2; only the wire under them changes. httpx's own transport (httpcore
over anyio) costs about 2–4 ms of CPU a request at 64 in flight on this project's machines, mostly
in its pool bookkeeping and anyio's per-connection attribute lookups; aiohttp's C-accelerated
parser and its connector cost about a third of that (`bench.http_cpu`, BENCHMARKS.md). httpx's
client layer on top (URL parsing and merging, the request and response models, cookie
extraction) costs about as much again, so `request_json` sends straight through the `Wire` of an
`AioClient` (`send_direct`) and builds no httpx objects at all.

What every path keeps, because callers depend on it:

- The exception classes, of httpx or of httpx2 (`errors=`). A connection that was never made
  (refused, unreachable, no address, a connect or pool timeout) raises `ConnectError` /
  `ConnectTimeout`, so a billable request is retried (and the OpenAI SDK's `never_sent` sees a
  `ConnectError` as the cause); anything after the request may have left (a read timeout, a
  dropped or reset connection, a malformed answer) raises `ReadTimeout` / `ReadError` /
  `RemoteProtocolError`, which `request_json` turns into `ChargeUncertain` for a paid call.
  Exception texts are the class's own words, never the URL (ZeroBounce puts its key there).
- The timeouts httpx hands down per request (connect, read, pool).
- The body as sent: aiohttp does not decompress (`auto_decompress=False`); a transport hands the
  encoded body to httpx, which decodes the Content-Encoding itself, as it would have. The direct
  path asks for no encoding, and decodes gzip or deflate if a server sends it anyway.
- No cookies between requests (`DummyCookieJar` here, `keep_no_cookies` on the client) and no
  environment proxies inside the wire: when HTTP(S)_PROXY or ALL_PROXY is set, an `AioClient`
  sends through httpx and the proxy transports httpx mounts for them, as before.

A response is read whole before it is returned: vendor answers are JSON documents, and
`request_json` and the SDK read them whole anyway. It is read up to `MAX_ANSWER_BYTES`, on the
wire and again after decompression: a broken or hostile endpoint (a misconfigured base URL, a
proxy) streaming without end, or a gzip bomb, ends as a `ReadError` ("answer larger than ...")
before it can take the worker's memory, and a paid request's answer that was cut off that way is a
`ChargeUncertain`, never re-sent. The transports decode a Content-Encoding themselves, under the
same bound, and hand the client the decoded body.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import httpx2
from multidict import CIMultiDictProxy
from yarl import URL

from leadgen_core.vendors.pool import shared_ssl_context

__all__ = [
    "AioClient",
    "AioHttpTransport",
    "Answer",
    "OpenAIAioTransport",
    "Wire",
    "aiohttp_client",
    "keep_no_cookies",
    "openai_http_client",
    "send_direct",
]

# The largest vendor answer read, compressed or not. The largest documented answers are far below
# it: a Tavily extract of 20 pages' raw content, a Lusha bulk answer of 100 contacts, a
# ZeroBounce batch of 200 addresses are a few MB at most; a chat completion is capped by
# max_completion_tokens.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
# response headers that describe the transfer, not the content, and that httpx sets itself
# (and the length and encoding, set again below for the body as read and decoded)
_HOP_BY_HOP = frozenset({b"transfer-encoding", b"connection", b"keep-alive", b"content-length", b"content-encoding"})
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "accept-encoding"})
ACCEPTED_ENCODINGS = "gzip, deflate"


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP answer, with the part of `httpx.Response`'s API `request_json` reads."""

    status_code: int
    reason: str
    headers: CIMultiDictProxy[str]
    raw_headers: tuple[tuple[bytes, bytes], ...]
    content: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    # aiohttp's `connect` covers waiting for a free connection and making one; `sock_connect` the latter only
    waiting = None if pool is None and connect is None else (pool or 0.0) + (connect or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)


Limits = httpx.Limits | httpx2.Limits


class Wire:
    """One `aiohttp.ClientSession` per event loop, sized by LIMITS, and the one way to send through it."""

    def __init__(self, limits: Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = ssl_context if ssl_context is not None else shared_ssl_context(trust_env=True)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            limits = self._limits
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections or 0,
                limit_per_host=0,
                keepalive_timeout=limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0,
                ssl=self._ssl,
                use_dns_cache=True,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                raise_for_status=False,
            )
            self._loop = loop
        return self._session

    async def send(
        self,
        method: str,
        url: str | URL,
        *,
        headers: list[tuple[str, str]],
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,
        errors: ModuleType,
        request: Any = None,
    ) -> Answer:
        """One exchange; failures raise ERRORS' (httpx's or httpx2's) exception classes, with REQUEST."""
        session = self.session()
        try:
            async with session.request(
                method, url, headers=headers, data=body, timeout=timeout, allow_redirects=False, compress=None
            ) as resp:
                content = await _read_bounded(resp, errors, request)
                answer = Answer(resp.status, resp.reason or "", resp.headers, tuple(resp.raw_headers), content)
            return _decoded(answer, errors, request)
        except aiohttp.ConnectionTimeoutError:
            raise errors.ConnectTimeout("connect timed out", request=request) from None
        except aiohttp.SocketTimeoutError:
            raise errors.ReadTimeout("read timed out", request=request) from None
        except aiohttp.ServerTimeoutError:
            raise errors.ReadTimeout("timed out", request=request) from None
        except aiohttp.ClientConnectorError as exc:
            # refused, unreachable, no address, or the TLS handshake failed: nothing was sent
            raise errors.ConnectError(f"connect failed ({type(exc).__name__})", request=request) from None
        except aiohttp.InvalidURL:
            raise errors.UnsupportedProtocol("invalid URL", request=request) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
            raise errors.RemoteProtocolError(f"server answer broken ({type(exc).__name__})", request=request) from None
        except aiohttp.ClientError as exc:  # a payload or socket error, mid-answer
            raise errors.ReadError(f"connection error ({type(exc).__name__})", request=request) from None
        except TimeoutError:
            raise errors.ReadTimeout("timed out", request=request) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def _too_large(errors: ModuleType, request: Any) -> Exception:
    error: Exception = errors.ReadError(f"answer larger than {MAX_ANSWER_BYTES:,} bytes", request=request)
    return error


async def _read_bounded(resp: aiohttp.ClientResponse, errors: ModuleType, request: Any) -> bytes:
    """RESP's body, or ERRORS.ReadError once it passes MAX_ANSWER_BYTES (declared or streamed)."""
    if resp.content_length is not None and resp.content_length > MAX_ANSWER_BYTES:
        raise _too_large(errors, request)
    stream = resp.content
    first = await stream.readany()  # nearly every answer: one chunk
    if stream.at_eof() or not first:
        return first
    chunks, size = [first], len(first)
    while chunk := await stream.readany():  # the chunks as they arrive, joined once: one copy
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            chunks.clear()  # not kept alive by the exception's traceback
            raise _too_large(errors, request)
        chunks.append(chunk)
    return b"".join(chunks)


async def _exchange(wire: Wire, request: Any, mod: ModuleType) -> Any:
    """REQUEST (an httpx or httpx2 Request, per MOD) sent through WIRE, answered as MOD's Response."""
    body = await request.aread()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    t = request.extensions.get("timeout") or {}
    answer = await wire.send(
        request.method,
        str(request.url),
        headers=[(k, v) for k, v in headers if k.lower() not in _NOT_FORWARDED]
        # only the encodings `_decoded` reads (httpx asks for br and zstd too when their libraries are installed)
        + [("Accept-Encoding", ACCEPTED_ENCODINGS)],
        body=body or None,
        timeout=_timeout(t.get("connect"), t.get("read"), t.get("pool")),
        errors=mod,
        request=request,
    )
    # the body decoded (under the bound) by `Wire.send`: the client gets no Content-Encoding to decode
    raw_headers = [(k, v) for k, v in answer.raw_headers if k.lower() not in _HOP_BY_HOP]
    raw_headers.append((b"content-length", str(len(answer.content)).encode()))
    return mod.Response(
        answer.status_code,
        headers=raw_headers,
        stream=mod.ByteStream(answer.content),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode("latin-1", "replace")},
        request=request,
    )


class AioHttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through a `Wire` (see the module docstring)."""

    def __init__(self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.wire = Wire(limits, ssl_context=ssl_context)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await _exchange(self.wire, request, httpx)
        return response

    async def aclose(self) -> None:
        await self.wire.aclose()


class OpenAIAioTransport(httpx2.AsyncBaseTransport):
    """Sends the OpenAI SDK's httpx2 requests through a `Wire`, raising httpx2's exception classes."""

    def __init__(self, limits: Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.wire = Wire(limits, ssl_context=ssl_context)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response: httpx2.Response = await _exchange(self.wire, request, httpx2)
        return response

    async def aclose(self) -> None:
        await self.wire.aclose()


def keep_no_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """CLIENT, with a cookie jar that accepts nothing: vendor APIs are keyed per request, and a
    cookie one answer sets must not ride along on the next request."""
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


def openai_http_client() -> httpx2.AsyncClient | None:
    """An httpx2 client over an `OpenAIAioTransport`, with the SDK's own defaults (timeout, limits,
    redirects) and no cookies kept; None when the installed SDK does not send through httpx2."""
    import openai  # noqa: PLC0415 - only the extractor needs the SDK

    if not issubclass(openai.DefaultAsyncHttpxClient, httpx2.AsyncClient):
        return None
    client = openai.DefaultAsyncHttpxClient(transport=OpenAIAioTransport(openai.DEFAULT_CONNECTION_LIMITS))
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


def _proxied() -> bool:
    """Whether the environment names a proxy for HTTP(S) requests (httpx would mount one for it)."""
    return any(k in ("http", "https", "all") for k in urllib.request.getproxies())


class AioClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` over an `AioHttpTransport`; `wire` is None when an environment proxy
    applies (every request then goes through httpx, which mounts the proxy's transport)."""

    def __init__(self, limits: httpx.Limits, **client_kwargs: Any) -> None:
        transport = AioHttpTransport(limits)
        # limits= still sizes the transports httpx mounts for environment proxies (HTTPS_PROXY ...)
        super().__init__(transport=transport, limits=limits, **client_kwargs)
        keep_no_cookies(self)
        self.wire: Wire | None = None if self.trust_env and _proxied() else transport.wire
        # the client's own defaults (User-Agent, Accept), read once; no encoding is asked for
        self.base_headers = tuple(
            (k, v) for k, v in self.headers.items() if k.lower() not in ("accept-encoding", "connection")
        )


def aiohttp_client(limits: httpx.Limits, **client_kwargs: Any) -> AioClient:
    """An `AioClient` of LIMITS: httpx's API, aiohttp's wire, no cookies kept."""
    return AioClient(limits, **client_kwargs)


def _inflate(content: bytes, wbits: int, errors: ModuleType, request: Any) -> bytes:
    """CONTENT decompressed, at most MAX_ANSWER_BYTES of it (a gzip bomb stops there)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(content, MAX_ANSWER_BYTES + 1)
    if len(out) > MAX_ANSWER_BYTES or inflater.unconsumed_tail:
        del out  # not kept alive by the exception's traceback
        raise _too_large(errors, request)
    if not inflater.eof:  # cut off before its end: as a dropped connection, never half a document
        raise errors.RemoteProtocolError("answer body truncated mid-stream", request=request)
    return out


def _decoded(answer: Answer, errors: ModuleType, request: Any = None) -> Answer:
    """ANSWER with its body decoded from its Content-Encoding (gzip, deflate), under the bound."""
    encoding = answer.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return answer
    try:
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                content = _inflate(answer.content, 47, errors, request)  # a gzip or zlib header
            except zlib.error:
                content = _inflate(answer.content, -15, errors, request)  # raw deflate
            return Answer(answer.status_code, answer.reason, answer.headers, answer.raw_headers, content)
    except zlib.error:
        pass
    raise errors.RemoteProtocolError(f"answer body not decodable ({encoding[:20]})", request=request)


async def send_direct(
    client: AioClient,
    method: str,
    url: str,
    *,
    timeout_s: float,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request through CLIENT's wire with its default headers, building no httpx objects: the
    path `request_json` takes for an `AioClient` (with a wire). Raises httpx's exception classes."""
    wire = client.wire
    if wire is None:
        raise ValueError("an environment proxy applies: send through the httpx client")
    target = URL(url)
    if params:
        target = target.update_query({k: str(v) for k, v in params.items()})
    own = {k.lower() for k in headers} if headers else set()
    merged = [(k, v) for k, v in client.base_headers if k.lower() not in own]
    if headers:
        merged.extend(headers.items())
    body = None
    if json is not None:
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
        if "content-type" not in own:
            merged.append(("Content-Type", "application/json"))
    return await wire.send(
        method, target, headers=merged, body=body, timeout=_timeout(timeout_s, timeout_s, timeout_s), errors=httpx
    )
