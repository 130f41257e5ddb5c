"""A vendor HTTP client whose keep-alive pool is split into shards, to spend less CPU per request.

httpcore's connection pool re-examines every connection it holds on each request it starts and
each response it finishes, and for every idle one it counts the whole pool again
(`AsyncConnectionPool._assign_requests_to_connections`): per request the work grows with the
square of the pool's size. A stage keeps as many connections alive as it has requests in flight
(`enrich.context.http_pool_limits`, 64 for ZeroBounce), so at that size the pool's bookkeeping
was most of the client's CPU per request.

`ShardedTransport` holds N ordinary `httpx.AsyncHTTPTransport`s, each with 1/N of the
connections (and of the kept-alive ones), and sends each request through the shard with the most
free connections (ties go round-robin). A request counts against its shard until its response is
closed, as a connection is busy until then, so while fewer requests are in flight than the total
limit one shard always has a free connection: no request waits that the single pool would have
sent. `sharded_client` wraps it in one `httpx.AsyncClient`, so callers see the usual client.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import AsyncIterator, Callable

import httpx

SHARD_CONNECTIONS = 8  # connections a shard holds (bench.http_cpu: 16 a shard cost 0.79 ms a request, 8 0.61, 4 0.55)
MAX_SHARDS = 16

__all__ = ["SHARD_CONNECTIONS", "ShardedTransport", "shard_count", "shared_ssl_context", "sharded_client"]

_SSL_CONTEXTS: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def shared_ssl_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """The verifying TLS context httpx would build (`httpx.create_ssl_context(trust_env=...)`:
    certifi's CA bundle, or SSL_CERT_FILE / SSL_CERT_DIR when TRUST_ENV), built once per process
    and CA setting.

    Building one loads the CA bundle, about 20 ms of CPU; httpx builds one for every transport,
    so each stage's clients (and every shard) paid it again. A context holds no per-connection
    state (SNI and the hostname check are per connection), so sharing it changes nothing else."""
    key = (
        (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if trust_env
        else (False, None, None)
    )
    context = _SSL_CONTEXTS.get(key)
    if context is None:
        context = _SSL_CONTEXTS.setdefault(key, httpx.create_ssl_context(trust_env=trust_env))
    return context


def shard_count(max_connections: int | None) -> int:
    """How many shards a pool of MAX_CONNECTIONS is split into (1 for a small or unbounded pool)."""
    if not max_connections or max_connections <= SHARD_CONNECTIONS:
        return 1
    return min(MAX_SHARDS, math.ceil(max_connections / SHARD_CONNECTIONS))


def _split(total: int | None, shards: int, index: int) -> int | None:
    """Shard INDEX's part of TOTAL (parts differ by at most one and add up to TOTAL)."""
    if total is None:
        return None
    return total // shards + (1 if index < total % shards else 0)


class _CountedStream(httpx.AsyncByteStream):
    """A response body that calls `done` once, when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()

    def _release(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()


class ShardedTransport(httpx.AsyncBaseTransport):
    """N `httpx.AsyncHTTPTransport`s sharing LIMITS between them; see the module docstring."""

    def __init__(self, limits: httpx.Limits, *, shards: int | None = None, **transport_kwargs: object) -> None:
        n = shard_count(limits.max_connections) if shards is None else max(1, shards)
        if limits.max_connections is not None:
            n = min(n, limits.max_connections)
        self._capacity: list[int] = []
        self._shards: list[httpx.AsyncHTTPTransport] = []
        trust_env = transport_kwargs.get("trust_env", True)
        transport_kwargs.setdefault("verify", shared_ssl_context(trust_env=bool(trust_env)))
        for i in range(n):
            size = _split(limits.max_connections, n, i)
            keepalive = _split(limits.max_keepalive_connections, n, i)
            if size is not None and keepalive is not None:
                keepalive = min(keepalive, size)
            shard_limits = httpx.Limits(
                max_connections=size, max_keepalive_connections=keepalive, keepalive_expiry=limits.keepalive_expiry
            )
            self._shards.append(httpx.AsyncHTTPTransport(limits=shard_limits, **transport_kwargs))  # type: ignore[arg-type]
            self._capacity.append(size if size is not None else 1 << 30)
        self._busy = [0] * n
        self._next = 0

    @property
    def shards(self) -> int:
        return len(self._shards)

    def _pick(self) -> int:
        n = len(self._shards)
        start = self._next
        self._next = (start + 1) % n
        best, best_free = start, self._capacity[start] - self._busy[start]
        for step in range(1, n):
            i = (start + step) % n
            free = self._capacity[i] - self._busy[i]
            if free > best_free:
                best, best_free = i, free
        return best

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = self._pick()
        self._busy[i] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[i] -= 1

        try:
            response = await self._shards[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


def sharded_client(limits: httpx.Limits, *, shards: int | None = None, **client_kwargs: object) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` over a `ShardedTransport` of LIMITS (what `httpx.AsyncClient(limits=...)`
    would be, with the pool split into shards)."""
    # limits= still sizes the transports httpx mounts for environment proxies (HTTPS_PROXY ...)
    return httpx.AsyncClient(transport=ShardedTransport(limits, shards=shards), limits=limits, **client_kwargs)  # type: ignore[arg-type]
