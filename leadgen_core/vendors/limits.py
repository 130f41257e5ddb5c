"""The vendors' documented limits, each beside its source: one place for the clients and the sandbox.

The realistic simulators enforce these numbers and the clients pace themselves under them, so a
figure changes here once. Every figure names the page it comes from (read 2026-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# --- Lusha ------------------------------------------------------------------------------------
# docs.lusha.com/rate-limiting.md, "Limits by endpoint group": all endpoints 25 requests/second.
LUSHA_PER_SECOND = 25
# docs.lusha.com/api-reference/overview (V3): every endpoint accepts batches; search, enrich and
# search-and-enrich take up to 100 items per request.
LUSHA_MAX_ITEMS = 100


class LushaPlan(StrEnum):
    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    PREMIUM = "premium"
    SCALE = "scale"
    LEGACY = "legacy"


@dataclass(frozen=True)
class LushaQuota:
    """Requests per minute, per hour (None: no hourly limit) and per day of a Lusha plan."""

    per_minute: int
    per_hour: int | None
    per_day: int


# docs.lusha.com/user-guide/lushas-api/all-there-is-to-know-about-lushas-api, "Rate limits":
# Free/Starter 40/min and 100/day (no hourly limit), Pro 50/150/1,500, Premium 300/1,800/18,000,
# Scale 300/5,000/50,000 (per minute / hour / day). API access needs Premium or Scale. Same page:
# "Legacy users will keep the same limits they always had; 300/minute, 600/hour, 6000/day."
# (Confirmed 2026-12-04. That page says limits are "enforced per API key"; rate-limiting.md says
# "applied at the account level, not per API key": the product keeps one bucket per account key.)
LUSHA_PLANS: dict[LushaPlan, LushaQuota] = {
    LushaPlan.FREE: LushaQuota(per_minute=40, per_hour=None, per_day=100),
    LushaPlan.STARTER: LushaQuota(per_minute=40, per_hour=None, per_day=100),
    LushaPlan.PRO: LushaQuota(per_minute=50, per_hour=150, per_day=1_500),
    LushaPlan.PREMIUM: LushaQuota(per_minute=300, per_hour=1_800, per_day=18_000),
    LushaPlan.SCALE: LushaQuota(per_minute=300, per_hour=5_000, per_day=50_000),
    LushaPlan.LEGACY: LushaQuota(per_minute=300, per_hour=600, per_day=6_000),
}
LUSHA_DEFAULT_PLAN = LushaPlan.PREMIUM


def lusha_plan(name: str | None) -> LushaPlan:
    """The plan named by LUSHA_PLAN (default premium); ValueError with the choices otherwise."""
    if not name:
        return LUSHA_DEFAULT_PLAN
    try:
        return LushaPlan(name.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in LushaPlan)
        raise ValueError(f"unknown Lusha plan {name!r}; expected one of {choices}") from None


# --- ZeroBounce -------------------------------------------------------------------------------
# zerobounce.net/docs/email-validation-api-quickstart/v2-batch-validate-emails (confirmed
# 2026-12-04): "batches up to 200 emails at a time", "rate limited to 5 uses per minute, if you
# exceed the rate limit, you will be blocked for 10 minutes", "can take up to 70 seconds", served
# at bulkapi.zerobounce.net.
ZEROBOUNCE_BATCH_MAX = 200
ZEROBOUNCE_BATCH_PER_MINUTE = 5
ZEROBOUNCE_BATCH_BLOCK_S = 600.0
ZEROBOUNCE_BATCH_MAX_S = 70.0
ZEROBOUNCE_BULK_BASE_URL = "https://bulkapi.zerobounce.net"
# zerobounce.net/docs/api-dashboard/api-rate-limits, "API Validation V2": 80,000 requests in 10 s
# on /v2/validate, then blocked for 1 minute (older copies of the page said 50,000).
ZEROBOUNCE_VALIDATE_PER_10S = 80_000
ZEROBOUNCE_VALIDATE_BLOCK_S = 60.0
# same page, "BulkAPI Unknown": batch answers with over 20 unknown results (not greylisted or
# antispam) more than once an hour block the bulk API for 1 hour.
ZEROBOUNCE_UNKNOWN_LIMIT = 20
ZEROBOUNCE_UNKNOWN_BLOCK_S = 3_600.0
# zerobounce.net/docs/email-validation-api-quickstart/v2-validate-emails: "response time ... between
# one second and 30 seconds"; "96-98% of all domains will return in 1 to 5 seconds" (Postfix/Dovecot
# domains take ~20 s, a very small fraction longer).
ZEROBOUNCE_VALIDATE_TYPICAL_S = (1.0, 5.0)
ZEROBOUNCE_VALIDATE_TAIL_S = 30.0
ZEROBOUNCE_VALIDATE_TAIL_RATE = 0.03

# --- Tavily -----------------------------------------------------------------------------------
# docs.tavily.com/documentation/rate-limits: 100 requests/min on a development key, 1,000 on a
# production key (which needs a paid plan or PAYGO).
TAVILY_RPM = {"development": 100, "production": 1_000}
TAVILY_DEFAULT_KEY_KIND = "production"


def tavily_key_kind(name: str | None) -> str:
    """The key kind named by TAVILY_KEY_KIND (default production); ValueError otherwise."""
    kind = (name or TAVILY_DEFAULT_KEY_KIND).strip().lower()
    if kind not in TAVILY_RPM:
        raise ValueError(f"unknown Tavily key kind {name!r}; expected development or production")
    return kind


# --- Retry-After ------------------------------------------------------------------------------
# The longest Retry-After each client sleeps through before retrying: at least the vendor's
# documented block, so a retry does not land inside it (a longer one gives up at once with
# RateLimited and the caller reschedules). Tavily and OpenAI limit per minute; Lusha's hourly
# quota resets within the hour; ZeroBounce blocks validatebatch for 10 minutes (its hour-long
# unknown-rule block is longer than a night can wait, so it gives up instead).
RETRY_AFTER_MAX_S: dict[str, float] = {
    "tavily": 60.0,
    "lusha": 3_600.0,
    "zerobounce": ZEROBOUNCE_BATCH_BLOCK_S,
    "openai": 60.0,
    # data.gov.sg limits per minute (keyless) and per 10 s (see leadgen_core/acra/api.py)
    "datagov": 60.0,
    # Odoo documents no rate limit or Retry-After; a proxy in front of it may send one
    "odoo": 60.0,
}
