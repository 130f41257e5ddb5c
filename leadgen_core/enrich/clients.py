"""Vendor endpoints and clients, from explicit configuration or the settings.

A vendor with a key talks to its real API (its base URL defaults to the vendor's documented one).
A vendor without a key is the SANDBOX: its simulator's dummy key is used and its base URL must
name the simulator (`leadgen sandbox up` prints both). A vendor with neither is a configuration
error, raised only by the stages that need that vendor.

Rate limits are the vendors' documented ones, kept a little under so a shared account has room:
they hold across processes through `SharedRateLimiter` (Postgres), one bucket per vendor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from leadgen_core import sandbox_contract as cluster
from leadgen_core.crawler import AddressPolicy, DomainLimiter, RobotsCache, SafeFetcher, SandboxResolver, SystemResolver
from leadgen_core.errors import ConfigError
from leadgen_core.settings import Settings
from leadgen_core.spend.ratelimit import QuotaWindow
from leadgen_core.vendors import LushaClient, OpenAIExtractor, RetryPolicy, TavilyClient, ZeroBounceClient
from leadgen_core.vendors.limits import (
    LUSHA_PLANS,
    RETRY_AFTER_MAX_S,
    TAVILY_RPM,
    ZEROBOUNCE_BULK_BASE_URL,
    LushaPlan,
)
from leadgen_core.vendors.zerobounce import BATCH_TIMEOUT_S

VENDORS = ("tavily", "lusha", "zerobounce", "openai")
REAL_BASE_URLS = {
    "tavily": "https://api.tavily.com",
    "lusha": "https://api.lusha.com",
    "zerobounce": "https://api.zerobounce.net",
    "openai": "https://api.openai.com/v1",
}
SANDBOX_KEYS = {
    "tavily": cluster.TAVILY_KEY,
    "lusha": cluster.LUSHA_KEY,
    "zerobounce": cluster.ZEROBOUNCE_KEY,
    "openai": cluster.OPENAI_KEY,
}


@dataclass(frozen=True)
class RateSpec:
    """Calls per second and the burst a vendor's bucket allows."""

    per_s: float
    burst: int


# Documented limits of the plans a nightly product needs (TAVILY_RPM etc. override them):
# Tavily: 1,000 requests/min on a production key (100 on a development key, whose 1,000 free
# credits a month a nightly run outgrows). Lusha: API access comes with Premium/Scale, 300
# requests/min; their hourly quota (1,800/5,000) is far above a night's LUSHA_MAX_CONTACT_LOOKUPS.
# ZeroBounce: the batch endpoint allows 5 calls a minute. OpenAI: tier-1 gpt-4o-mini allows 500
# requests/min; 360 leaves room under its tokens-per-minute limit for ~700-token extractions.
DEFAULT_RATES: dict[str, RateSpec] = {
    "tavily": RateSpec(per_s=1000 / 60, burst=10),
    "lusha": RateSpec(per_s=300 / 60, burst=10),
    "zerobounce": RateSpec(per_s=5 / 60, burst=5),
    "openai": RateSpec(per_s=6.0, burst=10),
}


def vendor_rate(vendor: str, settings: Settings | None, *, override: float | None = None) -> RateSpec:
    spec = DEFAULT_RATES[vendor]
    if override:
        return RateSpec(per_s=float(override), burst=spec.burst)
    rpm = settings.vendor_rpm(vendor) if settings is not None else None
    if rpm:
        return RateSpec(per_s=rpm / 60.0, burst=spec.burst)
    if vendor == "tavily" and settings is not None:  # TAVILY_KEY_KIND: development 100/min, production 1,000
        return RateSpec(per_s=TAVILY_RPM[settings.tavily_key_kind] / 60.0, burst=spec.burst)
    if vendor == "lusha" and settings is not None:  # LUSHA_PLAN: 300/min on Premium and Scale, 50 on Pro
        return RateSpec(per_s=LUSHA_PLANS[LushaPlan(settings.lusha_plan)].per_minute / 60.0, burst=spec.burst)
    return spec


def lusha_quota(settings: Settings) -> list[QuotaWindow]:
    """LUSHA_PLAN's hourly (if any) and daily request quotas, shared by every run on the account."""
    plan = LUSHA_PLANS[LushaPlan(settings.lusha_plan)]
    hourly = [QuotaWindow(limit=plan.per_hour, window_s=3_600)] if plan.per_hour is not None else []
    return [*hourly, QuotaWindow(limit=plan.per_day, window_s=86_400)]


@dataclass(frozen=True)
class Endpoint:
    vendor: str
    base_url: str
    api_key: str = field(repr=False)
    sandbox: bool


@dataclass(frozen=True)
class VendorConfig:
    """Explicit vendor configuration; every None falls back to the settings (the environment)."""

    tavily_base_url: str | None = None
    tavily_api_key: str | None = field(default=None, repr=False)
    lusha_base_url: str | None = None
    lusha_api_key: str | None = field(default=None, repr=False)
    zerobounce_base_url: str | None = None
    zerobounce_api_key: str | None = field(default=None, repr=False)
    zerobounce_bulk_base_url: str | None = None
    zerobounce_batch_timeout_s: float = BATCH_TIMEOUT_S  # fits the documented 70 s (tests shorten it)
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_model: str | None = None
    sandbox_web_port: int | None = None
    timeout_s: float = 20.0
    max_attempts: int = 4
    rates: Mapping[str, float] = field(default_factory=dict)  # per-vendor calls/s overrides

    def endpoint(self, vendor: str, settings: Settings) -> Endpoint:
        """Where VENDOR is and with which key; ConfigError when it is configured nowhere."""
        if vendor not in VENDORS:
            raise ValueError(f"unknown vendor {vendor!r}")
        base = getattr(self, f"{vendor}_base_url") or getattr(settings, f"{vendor}_base_url")
        key = getattr(self, f"{vendor}_api_key")
        if key is None:
            secret = getattr(settings, f"{vendor}_api_key")
            key = secret.get_secret_value() if secret is not None else None
        if key:
            return Endpoint(vendor, str(base or REAL_BASE_URLS[vendor]), str(key), sandbox=False)
        if not base:
            upper = vendor.upper()
            raise ConfigError(
                f"{vendor} is not configured: set {upper}_API_KEY, or run the sandbox "
                f"(`leadgen sandbox up`) and export {upper}_BASE_URL"
            )
        return Endpoint(vendor, str(base), SANDBOX_KEYS[vendor], sandbox=True)

    def rate(self, vendor: str, settings: Settings | None = None) -> RateSpec:
        """The resource's override, else the settings' `<VENDOR>_RPM`, else the default."""
        return vendor_rate(vendor, settings, override=self.rates.get(vendor))

    def retry(self, vendor: str | None = None) -> RetryPolicy:
        """The retry policy; VENDOR's Retry-After is honoured up to its documented block."""
        if vendor is None:
            return RetryPolicy(max_attempts=self.max_attempts)
        return RetryPolicy(max_attempts=self.max_attempts, max_retry_after_s=RETRY_AFTER_MAX_S[vendor])


def tavily_client(config: VendorConfig, settings: Settings, *, http: httpx.AsyncClient) -> TavilyClient:
    ep = config.endpoint("tavily", settings)
    return TavilyClient(
        base_url=ep.base_url, api_key=ep.api_key, http=http, timeout_s=config.timeout_s, retry=config.retry("tavily")
    )


def lusha_client(config: VendorConfig, settings: Settings, *, http: httpx.AsyncClient) -> LushaClient:
    ep = config.endpoint("lusha", settings)
    return LushaClient(
        base_url=ep.base_url, api_key=ep.api_key, http=http, timeout_s=config.timeout_s, retry=config.retry("lusha")
    )


def zerobounce_client(config: VendorConfig, settings: Settings, *, http: httpx.AsyncClient) -> ZeroBounceClient:
    ep = config.endpoint("zerobounce", settings)
    bulk = config.zerobounce_bulk_base_url or settings.zerobounce_bulk_base_url
    if bulk is None and not ep.sandbox:
        bulk = ZEROBOUNCE_BULK_BASE_URL  # validatebatch is served by the bulk host, not api.zerobounce.net
    # the client's own timeouts fit the documented 30 s (validate) and 70 s (batch) answers
    return ZeroBounceClient(
        base_url=ep.base_url,
        api_key=ep.api_key,
        bulk_base_url=bulk,
        http=http,
        batch_timeout_s=config.zerobounce_batch_timeout_s,
        retry=config.retry("zerobounce"),
    )


def openai_extractor(config: VendorConfig, settings: Settings) -> OpenAIExtractor:
    ep = config.endpoint("openai", settings)
    return OpenAIExtractor(
        base_url=ep.base_url,
        api_key=ep.api_key,
        model=config.openai_model or settings.openai_model,
        timeout_s=config.timeout_s,
        # the SDK's own retries honour Retry-After; attempts beyond the first are retries
        max_retries=max(0, config.max_attempts - 1),
        corpus_char_limit=settings.extract_corpus_char_limit,
    )


@dataclass(frozen=True)
class CrawlerParts:
    fetcher: SafeFetcher
    robots: RobotsCache
    limiter: DomainLimiter
    sandbox: bool


def crawler_parts(config: VendorConfig, settings: Settings) -> CrawlerParts:
    """The crawler; in sandbox mode it resolves only sandbox hosts and may reach only the web sim."""
    port = config.sandbox_web_port if config.sandbox_web_port is not None else settings.sandbox_web_port
    if port is not None:
        fetcher = SafeFetcher.from_settings(
            settings, resolver=SandboxResolver(port=port), policy=AddressPolicy.sandbox([port])
        )
    else:
        fetcher = SafeFetcher.from_settings(
            settings, resolver=SystemResolver(), policy=AddressPolicy.from_settings(settings)
        )
    return CrawlerParts(
        fetcher=fetcher,
        robots=RobotsCache(fetcher=fetcher),
        limiter=DomainLimiter(settings.crawler_domain_interval_s),
        sandbox=port is not None,
    )
