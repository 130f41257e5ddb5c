"""OpenAI's documented rate limits for gpt-4o-mini per usage tier, and its rate-limit headers.

One table serves both sides: the sandbox simulator enforces these limits under its `realistic`
profile, and the product's token-aware limiter sizes its buckets from them (`OPENAI_TIER`).

Sources:
* Rate limits guide, "Usage tiers" (developers.openai.com/api/docs/guides/rate-limits, the
  tier-1 table as quoted at community.openai.com/t/1028595): gpt-4o-mini on tier 1 is 500 RPM,
  10,000 RPD and 200,000 TPM.
* Model page gpt-4o-mini (developers.openai.com/api/docs/models/gpt-4o-mini, "Rate limits"):
  tier 2 is 5,000 RPM / 2,000,000 TPM, tier 3 5,000 / 4,000,000, tier 4 10,000 / 10,000,000 and
  tier 5 30,000 / 150,000,000. Max output is 16,384 tokens.
* Batch queue limit (tokens that may wait in the Batch API's queue at once; the product does not
  use the Batch API, the figure is kept for capacity planning): tier 1 2,000,000, tier 2
  20,000,000, tier 3 40,000,000, tier 4 1,000,000,000, tier 5 15,000,000,000 (the gpt-4o-mini
  model page's table as quoted at community.openai.com/t/1269349; tier 1 also at
  community.openai.com/t/1028595). RPM, RPD and TPM of the same quotes match the table below.
* Rate limits guide, "Rate limits in headers": x-ratelimit-limit-requests/-tokens,
  x-ratelimit-remaining-requests/-tokens and x-ratelimit-reset-requests/-tokens, the resets
  written as durations such as "1s", "6m0s" or "120ms".
* Same guide: a request counts against TPM with its prompt plus `max_tokens`
  (`max_completion_tokens`), so an oversized completion limit costs throughput even unused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TIER = 1
MODEL_MAX_OUTPUT_TOKENS = 16_384  # model page gpt-4o-mini: counted when a request sets no limit
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
TRY_AGAIN_RE = re.compile(r"try again in (\d+(?:\.\d+)?)(ms|s)", re.I)


@dataclass(frozen=True)
class TierLimits:
    """Requests and tokens a minute (and requests a day, where documented) for one model and tier."""

    rpm: int
    tpm: int
    rpd: int | None = None
    batch_queue_tokens: int | None = None  # the Batch API's queue limit (not used by the product)


# gpt-4o-mini, per usage tier (sources in the module docstring: the gpt-4o-mini model page's
# "Rate limits" table, quoted at community.openai.com/t/1269349, read 2026-12)
GPT_4O_MINI_TIERS: Mapping[int, TierLimits] = {
    1: TierLimits(rpm=500, tpm=200_000, rpd=10_000, batch_queue_tokens=2_000_000),
    2: TierLimits(rpm=5_000, tpm=2_000_000, batch_queue_tokens=20_000_000),
    3: TierLimits(rpm=5_000, tpm=4_000_000, batch_queue_tokens=40_000_000),
    4: TierLimits(rpm=10_000, tpm=10_000_000, batch_queue_tokens=1_000_000_000),
    5: TierLimits(rpm=30_000, tpm=150_000_000, batch_queue_tokens=15_000_000_000),
}


def tier_limits(tier: int) -> TierLimits:
    """The gpt-4o-mini limits of TIER (1–5); a clear error for anything else."""
    if tier not in GPT_4O_MINI_TIERS:
        raise ValueError(f"OPENAI_TIER must be one of 1-5, got {tier!r}")
    return GPT_4O_MINI_TIERS[tier]


def format_duration(seconds: float) -> str:
    """A reset duration as OpenAI writes it: "120ms", "1s", "6m0s", "1h2m3s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - whole
    tail = f"{secs + frac:.3g}s" if frac >= 0.001 and not hours and not minutes else f"{secs}s"
    if hours:
        return f"{hours}h{minutes}m{tail}"
    if minutes:
        return f"{minutes}m{tail}"
    return tail


def parse_duration(text: str | None) -> float | None:
    """Seconds of an x-ratelimit-reset-* value ("6m0s", "120ms", "1.5s"), None when unreadable."""
    if not text:
        return None
    parts = DURATION_RE.findall(text.strip())
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.strip():
        return None
    return sum(float(n) * UNIT_SECONDS[u] for n, u in parts)


def try_again_seconds(message: str | None) -> float | None:
    """The wait a 429's message names ("Please try again in 360ms."), None without one."""
    match = TRY_AGAIN_RE.search(message or "")
    if match is None:
        return None
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]
