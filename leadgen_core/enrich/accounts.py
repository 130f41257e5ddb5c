"""Whose vendor accounts a tenant-night pays with: the tenant's own where it connected one, else the platform's.

A tenant with its own account (`leadgen vendors connect`) sends its requests with its own key
and gets its own rate buckets, sized by its own plan: Lusha's plan quotas, OpenAI's tier RPM and
TPM, Tavily's key kind. The platform's `<VENDOR>_RPM`, `LUSHA_PLAN`, `TAVILY_KEY_KIND` and
`OPENAI_TIER/RPM/TPM` describe the platform's account and do not apply to it (the resource's
explicit `rate_per_s` still does: it is how a deployment or a test paces every account). Tenants
without one share the platform's buckets, named `vendor:<vendor>` as before; a tenant's own are
`vendor:<vendor>:tenant:<id>` (and `quota:lusha:tenant:<id>`), so the buckets show whose they are
and never hold a key. The response cache stays shared: an answer is the same whoever paid for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import psycopg

from leadgen_core.enrich.clients import DEFAULT_RATES, RateSpec, VendorConfig, lusha_quota, vendor_rate
from leadgen_core.settings import Settings
from leadgen_core.spend.ratelimit import QuotaWindow
from leadgen_core.vendor_accounts import VENDORS, OwnKey, load_accounts
from leadgen_core.vendors.limits import LUSHA_PLANS, TAVILY_RPM, LushaPlan
from leadgen_core.vendors.openai_tiers import tier_limits

RATE_BUCKET_PREFIX = "vendor:"
LUSHA_QUOTA_BUCKET = "quota:lusha"

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class OpenAILimits:
    """The tier and any explicit RPM/TPM the OpenAI limiter is sized with."""

    tier: int
    rpm: float | None
    tpm: float | None


@dataclass(frozen=True)
class NightAccounts:
    """The tenant's own keys for this run (vendor -> key and plan); an absent vendor is the platform's."""

    tenant_id: str
    own: Mapping[str, OwnKey] = field(default_factory=dict)

    def owns(self, vendor: str) -> bool:
        return vendor in self.own

    def config(self, base: VendorConfig) -> VendorConfig:
        """BASE with the tenant's keys in place of the platform's (same endpoints)."""
        keys = {f"{vendor}_api_key": k.key for vendor, k in self.own.items()}
        return dataclasses.replace(base, **keys) if keys else base  # type: ignore[arg-type]

    def bucket(self, vendor: str) -> str:
        """The request bucket VENDOR's calls book: the platform's, or the tenant's own."""
        return RATE_BUCKET_PREFIX + vendor + (f":tenant:{self.tenant_id}" if self.owns(vendor) else "")

    def lusha_quota_bucket(self) -> str:
        return LUSHA_QUOTA_BUCKET + (f":tenant:{self.tenant_id}" if self.owns("lusha") else "")

    def rate(self, vendor: str, config: VendorConfig, settings: Settings) -> RateSpec:
        """VENDOR's pace: the platform's settings, or the tenant account's documented plan."""
        own = self.own.get(vendor)
        if own is None:
            return config.rate(vendor, settings)
        burst = DEFAULT_RATES[vendor].burst
        override = config.rates.get(vendor)
        if override:
            return RateSpec(per_s=float(override), burst=burst)
        if vendor == "lusha" and own.plan:
            return RateSpec(per_s=LUSHA_PLANS[LushaPlan(own.plan)].per_minute / 60.0, burst=burst)
        if vendor == "tavily" and own.plan:
            return RateSpec(per_s=TAVILY_RPM[own.plan] / 60.0, burst=burst)
        if vendor == "openai" and own.plan:
            return RateSpec(per_s=tier_limits(int(own.plan)).rpm / 60.0, burst=burst)
        return vendor_rate(vendor, None)  # ZeroBounce: the documented limit, whoever's account

    def lusha_windows(self, settings: Settings) -> list[QuotaWindow]:
        """The hourly and daily quotas of the Lusha account in use."""
        own = self.own.get("lusha")
        if own is None or not own.plan:
            return lusha_quota(settings)
        return lusha_quota(settings.model_copy(update={"lusha_plan": own.plan}))

    def openai_limits(self, settings: Settings) -> OpenAILimits:
        """The OpenAI account's tier; OPENAI_RPM/TPM override only the platform's own account."""
        own = self.own.get("openai")
        if own is None:
            return OpenAILimits(tier=settings.openai_tier, rpm=settings.openai_rpm, tpm=settings.openai_tpm)
        return OpenAILimits(tier=int(own.plan or settings.openai_tier), rpm=None, tpm=None)


def night_accounts(
    conn: ConnFactory, *, tenant_id: str, environ: Mapping[str, str], vendors: Collection[str] = VENDORS
) -> NightAccounts:
    """The tenant's own keys among VENDORS, resolved from ENVIRON under the secret rule (ConfigError otherwise)."""
    wanted = [v for v in vendors if v in VENDORS]
    if not wanted:
        return NightAccounts(tenant_id)
    with conn() as c:  # a tenant transaction: RLS shows only this tenant's rows
        accounts = load_accounts(c, tenant_id=tenant_id, vendors=wanted)
    return NightAccounts(tenant_id, {vendor: account.key(environ) for vendor, account in accounts.items()})
