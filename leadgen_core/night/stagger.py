"""Staggered tenant starts: nights that share vendor accounts should not move through them in step.

Tenants that start together crawl together, then all hit OpenAI's token bucket together, then all
wait on ZeroBounce together: the night costs the *sum* of the shared floors (issue 9 measured 3 ×
300 targets at 398 s started together, 269 s with starts 60 s apart). Offsetting the starts lets
one tenant's crawl overlap another's extraction, so the shared buckets stay busy and the night
approaches the largest shared floor instead.

Only the runs that start together are offset (the first SCHED_TENANT_CONCURRENCY tenants); runs
queued behind them start when a slot frees, which staggers them already. The whole spread is at
most SLA_SHARE of SLA_MINUTES, so no tenant's night is pushed out of its SLA by waiting.
"""

from __future__ import annotations

from collections.abc import Sequence

SLA_SHARE = 0.25  # the last of the tenants that start together waits at most this share of the SLA


def start_offsets(tenants: Sequence[str], *, stagger_s: float, concurrency: int, sla_s: float) -> dict[str, float]:
    """Seconds each tenant's night waits before its first stage, in a stable order (tenant id).

    The k-th of the first CONCURRENCY tenants waits k × step, where step is STAGGER_S shortened
    so the spread stays within SLA_SHARE × SLA_S; the tenants queued behind them wait 0.
    """
    ordered = sorted(set(tenants))
    together = min(len(ordered), max(1, concurrency))
    step = min(max(0.0, stagger_s), SLA_SHARE * sla_s / (together - 1)) if together > 1 else 0.0
    return {t: round(i * step, 3) if i < together else 0.0 for i, t in enumerate(ordered)}
