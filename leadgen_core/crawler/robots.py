"""robots.txt: fetched through the SafeFetcher, parsed with protego, cached per origin.

RFC 9309 readings applied here:

* 2xx: the file's rules apply (parsed by protego, which matches our product token);
* 4xx ("unavailable"): no rules, everything is allowed;
* 5xx, timeouts, connection failures ("unreachable"): everything is disallowed, because we cannot
  know what the site forbids;
* a body of another content type, or more redirects than allowed, is treated as unavailable,
  i.e. no rules (RFC 9309 says the same of redirect chains longer than five).

An SSRF refusal (`BlockedAddress`) is not an answer about robots, so it propagates: the page
fetch would be refused for the same reason. Entries live for `ttl_s` (RFC 9309 suggests at most
24 hours) in a bounded LRU shared by the process.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from protego import Protego

from leadgen_core.crawler.fetch import (
    ROBOTS_TYPES,
    FetchTimeout,
    SafeFetcher,
    TooManyRedirects,
    UnsupportedContentType,
)
from leadgen_core.crawler.ssrf import check_url
from leadgen_core.errors import BlockedAddress, FetchError

DEFAULT_MAX_ORIGINS = 4096
DEFAULT_TTL_S = 24 * 3600.0
# A failure (timeout, 5xx) is remembered only briefly: it is cheap to ask again in a later run.
DEFAULT_FAILURE_TTL_S = 600.0


@dataclass(frozen=True)
class RobotsRules:
    """What one origin's robots.txt says, or the policy applied when it could not be read."""

    origin: str
    status: str  # "parsed", "allow_all" (4xx/unusable) or "disallow_all" (5xx/unreachable)
    reason: str
    fetched_at: float
    parser: Protego | None = None
    failure: str | None = None  # for "disallow_all": "timeout", "unreachable" or "server_error"

    def can_fetch(self, url: str, user_agent: str) -> bool:
        if self.status == "allow_all":
            return True
        if self.status == "disallow_all" or self.parser is None:
            return False
        return bool(self.parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay is not None else None


def origin_of(url: str) -> str:
    """scheme://host:port of a URL, the unit robots.txt applies to."""
    target = check_url(url)
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{target.scheme}://{host}:{target.port}"


class RobotsCache:
    """Per-origin robots.txt rules for the process, bounded and time-limited.

    The cache outlives any one event loop (Dagster may run steps in several), so a call can pass
    the loop's own `fetcher`; the constructor's fetcher is the default. A threading lock guards
    the LRU because it may be shared across threads.
    """

    def __init__(
        self,
        *,
        fetcher: SafeFetcher | None = None,
        max_origins: int = DEFAULT_MAX_ORIGINS,
        ttl_s: float = DEFAULT_TTL_S,
        failure_ttl_s: float = DEFAULT_FAILURE_TTL_S,
    ) -> None:
        self._fetcher = fetcher
        self._max = max(1, max_origins)
        self._ttl = ttl_s
        self._failure_ttl = failure_ttl_s
        self._rules: OrderedDict[str, RobotsRules] = OrderedDict()
        self._lock = threading.Lock()
        # In-flight fetches, so concurrent workers on one site fetch robots.txt once.
        self._pending: dict[tuple[str, int], asyncio.Task[RobotsRules]] = {}
        self.fetches = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._rules)

    def _cached(self, origin: str) -> RobotsRules | None:
        with self._lock:
            cached = self._rules.get(origin)
            if cached is None:
                return None
            ttl = self._failure_ttl if cached.failure else self._ttl
            if time.monotonic() - cached.fetched_at >= ttl:
                return None
            self._rules.move_to_end(origin)
            return cached

    async def rules_for(self, url: str, *, fetcher: SafeFetcher | None = None) -> RobotsRules:
        origin = origin_of(url)
        cached = self._cached(origin)
        if cached is not None:
            return cached
        use = fetcher or self._fetcher
        if use is None:
            raise ValueError("RobotsCache needs a fetcher: pass one to the constructor or the call")
        key = (origin, id(asyncio.get_running_loop()))
        task = self._pending.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():  # ids of dead loops recur
            task = asyncio.ensure_future(self._load(origin, use))
            self._pending[key] = task
        try:
            rules = await asyncio.shield(task)
        finally:
            if task.done() and self._pending.get(key) is task:
                del self._pending[key]
        self._store(rules)
        return rules

    async def can_fetch(self, url: str, user_agent: str, *, fetcher: SafeFetcher | None = None) -> bool:
        """Whether robots.txt lets `user_agent` fetch `url` (BlockedAddress propagates)."""
        return (await self.rules_for(url, fetcher=fetcher)).can_fetch(url, user_agent)

    async def crawl_delay(self, url: str, user_agent: str, *, fetcher: SafeFetcher | None = None) -> float | None:
        return (await self.rules_for(url, fetcher=fetcher)).crawl_delay(user_agent)

    def _store(self, rules: RobotsRules) -> None:
        with self._lock:
            self._rules[rules.origin] = rules
            self._rules.move_to_end(rules.origin)
            while len(self._rules) > self._max:
                self._rules.popitem(last=False)

    async def _load(self, origin: str, fetcher: SafeFetcher) -> RobotsRules:
        self.fetches += 1
        url = f"{origin}/robots.txt"
        now = time.monotonic()
        try:
            result = await fetcher.fetch(url, accept=ROBOTS_TYPES, utf8=True)  # a hostile charset label is ignored
        except BlockedAddress:
            raise
        except (UnsupportedContentType, TooManyRedirects) as exc:
            return RobotsRules(origin, "allow_all", f"robots.txt unusable: {exc}", now)
        except FetchTimeout as exc:
            return RobotsRules(origin, "disallow_all", f"robots.txt timed out: {exc}", now, failure="timeout")
        except FetchError as exc:
            return RobotsRules(origin, "disallow_all", f"robots.txt unreachable: {exc}", now, failure="unreachable")
        if 200 <= result.status < 300:
            # Sites sometimes answer robots.txt with an HTML page; protego then finds no rules.
            parser = Protego.parse(result.text)
            return RobotsRules(origin, "parsed", f"robots.txt {result.status}", now, parser)
        if result.status < 500:
            return RobotsRules(origin, "allow_all", f"robots.txt {result.status}: no rules", now)
        return RobotsRules(
            origin,
            "disallow_all",
            f"robots.txt answered {result.status}: site unavailable",
            now,
            failure="server_error",
        )
