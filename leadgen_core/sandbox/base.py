"""The common machinery of every sandbox simulator.

A simulator is a real HTTP server on loopback (a `ThreadingHTTPServer` in a daemon thread), so
clients under test go through real sockets, real timeouts and real connection errors. Each
simulator registers routes; this module adds what all of them share:

* a latency distribution (seeded, so a run is reproducible),
* a rate limit that answers 429 with `Retry-After`,
* fault injection: 5xx answers, timeouts (the handler sleeps past the client's timeout),
  and malformed bodies,
* a request log that tests assert on, and a counter of billable units.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlsplit

from leadgen_core.sandbox.profile import DEMO, SandboxProfile

MAX_BODY_BYTES = 5_000_000
T = TypeVar("T")
REQUEST_LOG_CAP = 100_000


@dataclass(frozen=True)
class FaultConfig:
    """How a simulator misbehaves. Rates are probabilities per request, in [0, 1]."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    rate_limit_per_s: float | None = None
    retry_after_s: float = 1.0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_sleep_s: float = 30.0
    malformed_rate: float = 0.0
    seed: int = 7


@dataclass
class SimRequest:
    """One request as the simulator saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class SimResponse:
    """What a route returns."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    billable_units: int = 0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


@dataclass(frozen=True)
class LoggedRequest:
    """An entry of the request log: what was asked, what was answered, what it cost."""

    method: str
    path: str
    status: int
    billable_units: int
    headers: dict[str, str]
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Route = Callable[[SimRequest], SimResponse]


class _QuietServer(ThreadingHTTPServer):
    """A client hanging up mid-answer (a crawler's timeout, say) is normal here, not a traceback.

    The listen backlog is a class attribute because `listen()` runs in the constructor: set on the
    instance afterwards it changed nothing, and the stdlib's 5 dropped the handshakes of a burst
    of new connections (ten run workers at once), which clients saw as connection errors."""

    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class SimServer:
    """A loopback HTTP server with routes, faults, a request log and a billing counter."""

    name = "sim"

    def __init__(self, *, faults: FaultConfig | None = None, port: int = 0, profile: SandboxProfile = DEMO) -> None:
        self.faults = faults or FaultConfig()
        # demo or realistic, and the time scale: each simulator reads its documented limits from it.
        self.profile = profile
        self._routes: list[tuple[str, str, bool, Route]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._window: deque[float] = deque()
        self.log: list[LoggedRequest] = []
        self.billable_units = 0
        # the keys of tenants' own accounts (bring your own key), accepted besides the simulator's own
        self.extra_keys: set[str] = set()
        self._accounts: dict[str, object] = {}  # a tenant account's own limits, by key
        self._accounts_lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def known_key(self, key: str | None, own: str) -> bool:
        """Whether KEY is the simulator's own key OWN or one of the tenants' accounts."""
        return key is not None and (key == own or key in self.extra_keys)

    def per_account(self, key: str | None, own: T, build: Callable[[], T]) -> T:
        """The limits' state of the account KEY belongs to: OWN for the simulator's own key (or an
        unknown one), else that tenant account's, built once: the vendors limit each account alone."""
        if key is None or key not in self.extra_keys:
            return own
        with self._accounts_lock:
            return cast(T, self._accounts.setdefault(key, build()))

    # --- routes ---------------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Route, *, prefix: bool = False) -> None:
        """Register a handler for METHOD PATH (or every path under PATH when prefix=True)."""
        self._routes.append((method.upper(), path, prefix, handler))

    def _find(self, method: str, path: str) -> Route | None:
        for m, p, prefix, handler in self._routes:
            if m == method and (path == p or (prefix and path.startswith(p))):
                return handler
        return None

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SimServer:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per response would otherwise wait ~40 ms on delayed ACKs (Nagle).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                return  # the request log replaces stderr noise

            def _handle(self) -> None:
                sim._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle  # noqa: N815

        server = _QuietServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"{self.name}-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- bookkeeping ----------------------------------------------------------------------
    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.billable_units = 0

    def requests_to(self, path: str) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if r.path == path]

    def _roll(self) -> float:
        with self._lock:
            return self._rng.random()

    def _rate_limited(self) -> bool:
        limit = self.faults.rate_limit_per_s
        if not limit:
            return False
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= limit:
                return True
            self._window.append(now)
            return False

    def _latency(self) -> float:
        f = self.faults
        if f.latency_ms <= 0:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(-f.latency_jitter_ms, f.latency_jitter_ms) if f.latency_jitter_ms else 0
        return max(0.0, (f.latency_ms + jitter) / 1000.0)

    # --- dispatch -------------------------------------------------------------------------
    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(min(length, MAX_BODY_BYTES)) if length else b""
        req = SimRequest(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
        )
        resp = self._answer(req)
        payload = resp.encoded()
        with self._lock:
            if len(self.log) < REQUEST_LOG_CAP:
                self.log.append(
                    LoggedRequest(req.method, req.path, resp.status, resp.billable_units, req.headers, req.query, body)
                )
            self.billable_units += resp.billable_units
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type)
            h.send_header("Content-Length", str(len(payload)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (timeout test); nothing left to say

    def _answer(self, req: SimRequest) -> SimResponse:
        handler = self._find(req.method, req.path)
        if handler is None:
            return SimResponse(404, {"error": "not found", "path": req.path})
        delay = self._latency()
        if delay:
            time.sleep(delay)
        if self._rate_limited():
            return SimResponse(
                429,
                self.rate_limit_body(),
                headers={"Retry-After": f"{self.faults.retry_after_s:g}"},
            )
        f = self.faults
        if f.timeout_rate and self._roll() < f.timeout_rate:
            time.sleep(f.timeout_sleep_s)
            return SimResponse(504, {"error": "gateway timeout"})
        if f.error_rate and self._roll() < f.error_rate:
            return SimResponse(503, {"error": "service unavailable"})
        resp = handler(req)
        if f.malformed_rate and resp.status == 200 and self._roll() < f.malformed_rate:
            return SimResponse(200, b'{"truncated": ', billable_units=0)
        return resp

    def rate_limit_body(self) -> dict[str, Any]:
        """The body of a 429; simulators override it with the vendor's documented shape."""
        return {"error": "rate limit exceeded"}


def bearer_token(req: SimRequest) -> str | None:
    """The token of an `Authorization: Bearer` header, or None."""
    value = req.header("authorization") or ""
    if value.lower().startswith("bearer "):
        token = value[7:].strip()
        return token or None
    return None
