"""The website crawler: SSRF-safe fetching, robots.txt, per-domain politeness and page parsing.

Typical wiring (sandbox mode shown; production uses `SystemResolver()` and `AddressPolicy()`):

    fetcher = SafeFetcher.from_settings(
        settings, resolver=SandboxResolver(port=sim.port), policy=AddressPolicy.sandbox([sim.port])
    )
    result = await crawl_site("acme.sandbox.test", fetcher=fetcher, robots=RobotsCache(fetcher=fetcher),
                              limiter=DomainLimiter(settings.crawler_domain_interval_s), ...)
"""

from __future__ import annotations

from leadgen_core.crawler.crawl import CrawledPage, CrawlResult, CrawlStatus, crawl_site
from leadgen_core.crawler.domain_limiter import DomainLimiter
from leadgen_core.crawler.fetch import (
    BodyTooLarge,
    FetchResult,
    FetchTimeout,
    FetchUnreachable,
    SafeFetcher,
    TooManyRedirects,
    UnsupportedContentType,
)
from leadgen_core.crawler.parse import PageSignals, parse_page
from leadgen_core.crawler.robots import RobotsCache, RobotsRules
from leadgen_core.crawler.ssrf import AddressPolicy, Resolver, SandboxResolver, SystemResolver, check_url

__all__ = [
    "AddressPolicy",
    "BodyTooLarge",
    "CrawlResult",
    "CrawlStatus",
    "CrawledPage",
    "DomainLimiter",
    "FetchResult",
    "FetchTimeout",
    "FetchUnreachable",
    "PageSignals",
    "Resolver",
    "RobotsCache",
    "RobotsRules",
    "SafeFetcher",
    "SandboxResolver",
    "SystemResolver",
    "TooManyRedirects",
    "UnsupportedContentType",
    "check_url",
    "crawl_site",
    "parse_page",
]
