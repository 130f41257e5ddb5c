"""The vendor floor: the least time the night's vendor work takes through the vendors' own limits.

Today's stage-sum bound (`bench.night_bound`) charges each stage its own floor, one after the
other. The vendor floor asks a different question: however the product scheduled its work, each
vendor bucket (requests, tokens; per second, minute, hour, day) must pass all of the night's
work through its documented limit. For every bucket

    floor(b) = fill(b) + work(b) ÷ limit(b) + drain(b)

where work(b) is counted from the simulators' logs over every tenant (a request, or the tokens
OpenAI counts against TPM: the prompt plus `max_completion_tokens`), fill(b) is the shortest time
before any tenant can send b's first request (the fewest stage floors any tenant has before the
first stage that uses b) and drain(b) the shortest time after its last (the fewest stage floors
after the last stage that uses b). A per-minute or per-second limit is a refilling bucket: work ÷
limit × period. An hourly or daily quota is a fixed window: the first window's quota is free, so
it costs (⌈work ÷ limit⌉ − 1) × period. The night's vendor floor is the largest floor(b).

Credits (Tavily's, Lusha's, ZeroBounce's) carry no documented time limit: they are bounded by the
daily caps, not by time, so they are counted but set no floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.night_bound import KINDS, STAGES, Attribution, sim_log
from leadgen_core.sandbox.cluster import SandboxCluster
from leadgen_core.sandbox.openai_sim import charged_tokens
from leadgen_core.vendors.limits import (
    LUSHA_PER_SECOND,
    LUSHA_PLANS,
    TAVILY_RPM,
    ZEROBOUNCE_BATCH_PER_MINUTE,
    ZEROBOUNCE_VALIDATE_PER_10S,
    LushaPlan,
)
from leadgen_core.vendors.openai_tiers import tier_limits

MINUTE, HOUR, DAY = 60.0, 3_600.0, 86_400.0


@dataclass(frozen=True)
class Bucket:
    """One documented limit: LIMIT units of WHAT per PERIOD seconds on VENDOR's account."""

    vendor: str
    what: str  # "requests" | "tokens"
    limit: float
    period_s: float
    window: bool  # a fixed quota window (hour, day) rather than a refilling bucket
    kinds: tuple[str, ...]  # the request kinds (bench.night_bound.KINDS) that count against it

    @property
    def name(self) -> str:
        per = {1.0: "s", 10.0: "10s", MINUTE: "min", HOUR: "h", DAY: "day"}.get(self.period_s, f"{self.period_s:g}s")
        return f"{self.vendor}:{self.what}/{per}"

    def seconds(self, work: float, *, scale: float) -> float:
        """The least time WORK units take through this bucket, its limit raised by SCALE."""
        limit = self.limit * scale
        if work <= 0 or limit <= 0:
            return 0.0
        if self.window:
            return max(0, math.ceil(work / limit) - 1) * self.period_s
        return work / limit * self.period_s


def buckets(*, openai_tier: int, lusha_plan: str, tavily_key_kind: str, zerobounce_mode: str) -> list[Bucket]:
    """Every documented limit a night's work passes through (sources in vendors.limits/openai_tiers)."""
    oa = tier_limits(openai_tier)
    openai_kinds = ("openai_extract", "openai_rationale")
    lusha_kinds = ("lusha_prospecting", "lusha_enrich")
    plan = LUSHA_PLANS[LushaPlan(lusha_plan)]
    out = [
        Bucket("openai", "requests", oa.rpm, MINUTE, False, openai_kinds),
        Bucket("openai", "tokens", oa.tpm, MINUTE, False, openai_kinds),
        Bucket("tavily", "requests", TAVILY_RPM[tavily_key_kind], MINUTE, False, ("tavily_search", "tavily_extract")),
        Bucket("lusha", "requests", LUSHA_PER_SECOND, 1.0, False, lusha_kinds),
        Bucket("lusha", "requests", plan.per_minute, MINUTE, False, lusha_kinds),
        Bucket("lusha", "requests", plan.per_day, DAY, True, lusha_kinds),
    ]
    if oa.rpd is not None:
        out.append(Bucket("openai", "requests", oa.rpd, DAY, True, openai_kinds))
    if plan.per_hour is not None:
        out.append(Bucket("lusha", "requests", plan.per_hour, HOUR, True, lusha_kinds))
    if zerobounce_mode == "batch":
        out.append(Bucket("zerobounce", "requests", ZEROBOUNCE_BATCH_PER_MINUTE, MINUTE, False, ("zerobounce_batch",)))
    else:
        out.append(Bucket("zerobounce", "requests", ZEROBOUNCE_VALIDATE_PER_10S, 10.0, False, ("zerobounce_single",)))
    return out


def work_by_kind(cluster: SandboxCluster, who: Attribution) -> dict[str, dict[str, int]]:
    """kind -> {"requests": n, "tokens": n}: the answered requests (and OpenAI's TPM tokens) of every tenant."""
    out: dict[str, dict[str, int]] = {}
    for sim in ("tavily", "openai", "lusha", "zerobounce"):
        for r in sim_log(cluster, sim):
            if r.status >= 400 or (sim == "zerobounce" and r.path not in ("/v2/validate", "/v2/validatebatch")):
                continue  # a refused request used no quota the night needed
            kind, _ = who.request(sim, r)
            row = out.setdefault(kind, {"requests": 0, "tokens": 0})
            row["requests"] += 1
            if sim == "openai":
                prompt, completion_limit = charged_tokens(r.json())
                row["tokens"] += prompt + completion_limit
    return out


@dataclass(frozen=True)
class BucketFloor:
    bucket: str
    work: int
    fill_s: float
    through_s: float
    drain_s: float

    @property
    def floor_s(self) -> float:
        return self.fill_s + self.through_s + self.drain_s


def vendor_floor(
    bucket_list: Sequence[Bucket], work: Mapping[str, Mapping[str, int]], *,
    stage_floors: Mapping[str, Mapping[str, float]], scale: float,
) -> tuple[float, list[BucketFloor]]:  # fmt: skip
    """(the night's vendor floor, every bucket's floor, largest first), in the scaled world's seconds.

    STAGE_FLOORS is tenant -> stage -> that tenant's floor of the stage (bench.night_bound).
    """
    floors: list[BucketFloor] = []
    for b in bucket_list:
        amount = sum(work.get(k, {}).get(b.what, 0) for k in b.kinds)
        if amount <= 0:
            continue
        used = sorted({STAGES.index(KINDS[k][0]) for k in b.kinds if work.get(k, {}).get(b.what)})
        first, last = used[0], used[-1]
        fill = min((sum(f[s] for s in STAGES[:first]) for f in stage_floors.values()), default=0.0)
        drain = min((sum(f[s] for s in STAGES[last + 1 :]) for f in stage_floors.values()), default=0.0)
        floors.append(BucketFloor(b.name, amount, fill, b.seconds(amount, scale=scale), drain))
    floors.sort(key=lambda f: f.floor_s, reverse=True)
    return (floors[0].floor_s if floors else 0.0), floors
