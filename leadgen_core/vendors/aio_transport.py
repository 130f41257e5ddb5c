"""An httpx transport that sends through aiohttp, to spend less CPU per vendor request.

The vendor clients speak httpx (`request_json`, respx in the tests, `httpx.Response` everywhere);
only the wire under them changes. httpx's own transport (httpcore over anyio) costs about 2–4 ms
of CPU a request at 64 in flight on this project's machines, mostly in its pool bookkeeping and
anyio's per-connection attribute lookups; aiohttp's C-accelerated parser and its connector cost
about a third of that (`bench.verify_cpu`, BENCHMARKS.md).

What it keeps from httpx's transport, because callers depend on it:

- The exception classes. A connection that was never made (refused, unreachable, no address, a
  connect or pool timeout) raises `httpx.ConnectError` / `httpx.ConnectTimeout`, so a billable
  request is retried; anything after the request may have left (a read timeout, a dropped or reset
  connection, a malformed answer) raises `httpx.ReadTimeout` / `httpx.ReadError` /
  `httpx.RemoteProtocolError`, which `request_json` turns into `ChargeUncertain` for a paid call.
  Exception texts are the class's own words, never the URL (ZeroBounce puts its key there).
- The timeouts httpx hands down per request (connect, read, pool).
- The body as sent: aiohttp does not decompress (`auto_decompress=False`); httpx decodes the
  Content-Encoding itself, as it would have.
- No cookies between requests (`DummyCookieJar` here, `keep_no_cookies` on the client) and no
  environment proxies inside the transport (httpx mounts its own for HTTP(S)_PROXY, as before).

A response is read whole before it is returned: vendor answers are small JSON documents, and
`request_json` reads them whole anyway.
"""

from __future__ import annotations

import asyncio
import ssl
from http.cookiejar import DefaultCookiePolicy

import aiohttp
import httpx

from leadgen_core.vendors.pool import shared_ssl_context

__all__ = ["AioHttpTransport", "aiohttp_client", "keep_no_cookies"]

# response headers that describe the transfer, not the content, and that httpx sets itself
# (and the length, set again below for the body as read)
_HOP_BY_HOP = frozenset({b"transfer-encoding", b"connection", b"keep-alive", b"content-length"})


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    t = request.extensions.get("timeout") or {}
    connect, read, pool = t.get("connect"), t.get("read"), t.get("pool")
    # aiohttp's `connect` covers waiting for a free connection and making one; `sock_connect` the latter only
    waiting = None if pool is None and connect is None else (pool or 0.0) + (connect or 0.0)
    return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect, sock_read=read)


class AioHttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one `aiohttp.ClientSession` per event loop (see the module docstring)."""

    def __init__(self, limits: httpx.Limits, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._limits = limits
        self._ssl = ssl_context if ssl_context is not None else shared_ssl_context(trust_env=True)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> aiohttp.ClientSession:
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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._client()
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        headers = [(k, v) for k, v in headers if k.lower() not in ("host", "content-length", "transfer-encoding")]
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body if body else None,
                timeout=_timeout(request),
                allow_redirects=False,
                compress=None,
            ) as resp:
                content = await resp.read()
                raw_headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in _HOP_BY_HOP]
                status, reason = resp.status, resp.reason or ""
        except aiohttp.ConnectionTimeoutError:
            raise httpx.ConnectTimeout("connect timed out", request=request) from None
        except aiohttp.SocketTimeoutError:
            raise httpx.ReadTimeout("read timed out", request=request) from None
        except aiohttp.ServerTimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None
        except aiohttp.ClientConnectorError as exc:
            # refused, unreachable, no address, or the TLS handshake failed: nothing was sent
            raise httpx.ConnectError(f"connect failed ({type(exc).__name__})", request=request) from None
        except aiohttp.InvalidURL:
            raise httpx.UnsupportedProtocol("invalid URL", request=request) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError) as exc:
            raise httpx.RemoteProtocolError(f"server answer broken ({type(exc).__name__})", request=request) from None
        except aiohttp.ClientError as exc:  # a payload or socket error, mid-answer
            raise httpx.ReadError(f"connection error ({type(exc).__name__})", request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("timed out", request=request) from None
        # the body as sent: the client reads it through the Content-Encoding decoder as usual
        raw_headers.append((b"content-length", str(len(content)).encode()))
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason.encode("latin-1", "replace")},
            request=request,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def keep_no_cookies(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """CLIENT, with a cookie jar that accepts nothing: vendor APIs are keyed per request, and a
    cookie one answer sets must not ride along on the next request."""
    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return client


def aiohttp_client(limits: httpx.Limits, **client_kwargs: object) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` whose requests go out through an `AioHttpTransport` of LIMITS, keeping no cookies."""
    # limits= still sizes the transports httpx mounts for environment proxies (HTTPS_PROXY ...)
    client = httpx.AsyncClient(transport=AioHttpTransport(limits), limits=limits, **client_kwargs)  # type: ignore[arg-type]
    return keep_no_cookies(client)
