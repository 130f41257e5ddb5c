"""Working a stage over the night's pending companies.

`run_companies` gives each pending company to WORK under a semaphore of SCHED_COMPANY_CONCURRENCY
and records one `Outcome` per company. Outcomes are written in groups, at most STATUS_FLUSH_S after
they are known (one pipelined transaction for all that finished meanwhile, not one each), so a crash
loses at most the companies in flight and those of the last STATUS_FLUSH_S; their work (snapshots,
extractions, paid answers) is already stored, and the re-run finds it. A company never aborts the
batch: the final answers the product expects become a degraded item with a reason
(`budget:<vendor>`, `dry_run`, `vendor_auth:<vendor>`...); transient vendor failures
(`errors.is_transient`: `vendor_down:<vendor>`, `rate_limited:<vendor>`, `rate_limited:queue`) and
anything unexpected become a failed item, with the reason and an attempt count, that the next
materialisation (or night) retries. In a dry run nothing is recorded, so the real run that follows
still finds every company pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadgen_core.enrich.context import EnrichContext, Toolkit
from leadgen_core.errors import (
    BudgetExhausted,
    ChargeUncertain,
    RateLimited,
    VendorAuthError,
    VendorError,
    VendorResponseError,
    VendorUnavailable,
    is_transient,
)
from leadgen_core.night import stage_status
from leadgen_core.night.stage_status import Outcome, Status
from leadgen_core.night.stagestats import StageCounts
from leadgen_core.redaction import redact
from leadgen_core.spend.spender import DryRunSkipped

PROGRESS_STEPS = 10
STATUS_FLUSH_S = 0.25
MAX_ERROR_CHARS = 500
VENDOR_REASONS: tuple[tuple[type[VendorError], str], ...] = (
    (BudgetExhausted, "budget"),
    (VendorAuthError, "vendor_auth"),
    (RateLimited, "rate_limited"),
    (VendorUnavailable, "vendor_down"),
    (VendorResponseError, "vendor_response"),
    (ChargeUncertain, "charge_uncertain"),  # timed out after sending: recorded uncertain, not re-sent
)

Work = Callable[[int], Awaitable[Outcome]]


def error_outcome(company_id: int, exc: BaseException, *, secrets: Sequence[str] = ()) -> Outcome:
    """The outcome an exception out of a company's work stands for."""
    text = redact(f"{type(exc).__name__}: {exc}", secrets)[:MAX_ERROR_CHARS]
    if isinstance(exc, DryRunSkipped):
        return Outcome(company_id, "degraded", f"dry_run:{exc.vendor}")
    status: Status = "failed" if is_transient(exc) else "degraded"
    if isinstance(exc, VendorError):
        kind = next((k for cls, k in VENDOR_REASONS if isinstance(exc, cls)), "vendor")
        return Outcome(company_id, status, f"{kind}:{exc.vendor}", error=text)
    if isinstance(exc, TimeoutError):
        # the shared rate limiter refused a slot too far away: the vendor is saturated for now
        return Outcome(company_id, status, "rate_limited:queue", error=text)
    return Outcome(company_id, "failed", "error", error=text)


@dataclass
class StageReport:
    """What one materialisation of a stage did, for the asset's metadata."""

    stage: str
    dry_run: bool
    pending: int
    outcomes: list[Outcome] = field(default_factory=list)
    night: dict[str, int] = field(default_factory=dict)  # status -> count, over the whole night
    spent: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    shared: dict[str, int] = field(default_factory=dict)  # answers waited for: another tenant's call paid
    forecast_calls: dict[str, int] = field(default_factory=dict)
    forecast_units: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    company_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def degraded_by_reason(self) -> dict[str, int]:
        return dict(Counter(o.reason or "-" for o in self.outcomes if o.status == "degraded"))

    def counts(self) -> StageCounts:
        """The night's counts for this stage (earlier materialisations included; a dry run's own)."""
        source = self.night if not self.dry_run else Counter(o.status for o in self.outcomes)
        done, degraded, failed = (int(source.get(k, 0)) for k in ("done", "degraded", "failed"))
        return StageCounts(items=sum(int(n) for n in source.values()), done=done, degraded=degraded, failed=failed)

    def timing(self) -> dict[str, float]:
        xs = sorted(self.company_seconds)
        if not xs:
            return {"stage_s": round(self.seconds, 3)}
        p95 = xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)]
        return {
            "stage_s": round(self.seconds, 3),
            "company_p50_s": round(statistics.median(xs), 3),
            "company_p95_s": round(p95, 3),
            "company_max_s": round(xs[-1], 3),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "processed": len(self.outcomes),
            "pending_at_start": self.pending,
            "degraded_by_reason": self.degraded_by_reason(),
            "vendor_units": dict(self.spent),
            "cache_hits": dict(self.cache_hits),
            "shared_answers": dict(self.shared),
            "counters": dict(self.counters),
            "dry_run": self.dry_run,
            "forecast_calls": dict(self.forecast_calls),
            "forecast_units": dict(self.forecast_units),
            "timing": self.timing(),
        }


class _ProgressLog:
    """Calls PROGRESS at every ~10% of the batch, and at the end."""

    def __init__(self, ctx: EnrichContext, *, stage: str, total: int) -> None:
        self._ctx, self._stage, self._total = ctx, stage, total
        self._step = max(1, math.ceil(total / PROGRESS_STEPS))
        self._done = 0
        self._statuses: Counter[str] = Counter()

    def tick(self, outcome: Outcome) -> None:
        self._done += 1
        self._statuses[outcome.status] += 1
        if self._done % self._step == 0 or self._done == self._total:
            parts = ", ".join(f"{n} {s}" for s, n in sorted(self._statuses.items()))
            self._ctx.progress(f"{self._stage}: {self._done}/{self._total} companies ({parts})")


class _StatusWriter:
    """Outcomes written in groups: the first of a group waits STATUS_FLUSH_S, then one transaction
    records everything that finished meanwhile. A failed write fails the stage, as before."""

    def __init__(self, ctx: EnrichContext, stage: str) -> None:
        self._ctx, self._stage = ctx, stage
        self._pending: list[Outcome] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, outcome: Outcome) -> None:
        self._raise_failure()
        self._pending.append(outcome)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(delay=STATUS_FLUSH_S))

    async def _write(self, *, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        ctx, stage = self._ctx, self._stage
        while self._pending:
            group, self._pending = self._pending, []
            await ctx.in_tenant(
                functools.partial(
                    stage_status.record_many, tenant_id=ctx.tenant_id, day=ctx.day, stage=stage, outcomes=group
                )
            )

    def _raise_failure(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()

    async def close(self) -> None:
        """Write what is left; raises what a write raised."""
        if self._task is not None:
            await self._task
        await self._write(delay=0)

    async def abandon(self) -> None:
        """The stage is failing anyway: write what finished, and let the first error stand."""
        with contextlib.suppress(Exception):
            await self.close()


async def run_companies(kit: Toolkit, *, stage: str, company_ids: Sequence[int], work: Work) -> list[Outcome]:
    """WORK on every company, at most `ctx.workers` at a time; one recorded outcome each."""
    ctx = kit.ctx
    semaphore = asyncio.Semaphore(ctx.workers)
    progress = _ProgressLog(ctx, stage=stage, total=len(company_ids))
    secrets = kit.secrets
    writer = _StatusWriter(ctx, stage)

    async def one(company_id: int) -> Outcome:
        async with semaphore:
            started = time.monotonic()
            try:
                outcome = await work(company_id)
            except Exception as exc:  # one company's surprise must not end the night
                outcome = error_outcome(company_id, exc, secrets=secrets)
            kit.company_seconds.append(time.monotonic() - started)
            if not ctx.dry_run:
                writer.add(outcome)
            progress.tick(outcome)
            return outcome

    try:
        outcomes = list(await asyncio.gather(*(one(c) for c in company_ids)))
    except BaseException:
        await asyncio.shield(writer.abandon())
        raise
    await writer.close()
    return outcomes


async def pending_companies(ctx: EnrichContext, stage: str) -> list[int]:
    ids: list[int] = await ctx.in_tenant(
        lambda conn: stage_status.pending(
            conn,
            tenant_id=ctx.tenant_id,
            day=ctx.day,
            stage=stage,
            dry_run_cap=ctx.settings.daily_cap_per_tenant if ctx.dry_run else None,
        )
    )
    return ids


async def finish_report(kit: Toolkit, report: StageReport, *, started: float) -> StageReport:
    """Fill REPORT with the spender's books, the toolkit's counters and the night's totals."""
    ctx, spender = kit.ctx, kit.spender
    report.spent = dict(spender.spent)
    report.cache_hits = dict(spender.cache_hits)
    report.shared = dict(spender.shared)
    report.forecast_calls = dict(spender.forecast.calls)
    report.forecast_units = dict(spender.forecast.units)
    report.counters = dict(kit.counters)
    report.company_seconds = list(kit.company_seconds)
    if not ctx.dry_run:
        report.night = await ctx.in_tenant(
            lambda conn: stage_status.summary(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=report.stage)
        )
    report.seconds = time.monotonic() - started
    return report
