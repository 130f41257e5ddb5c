"""The scoring stage: features, a weighted score with attribution, and a rationale, per target.

For each pending target (`stage_status`), the features and score are computed from the evidence
with the tenant's weights (icp_rules.payload.weights, else DEFAULT_WEIGHTS). The rationale comes
from the LLM through `Spender.call` (vendor "openai"): the request is keyed by the feature hash,
the company name and the weights, so the response cache answers any re-score of the same facts
for free; a refused budget, a dry run, a vendor failure or an unusable answer falls back to the
deterministic template. Cache misses share LLM requests, RATIONALE_BATCH leads to one
(`rationale_batch`): one rate-limit slot and one system prompt for ten rationales. Each company's
features, score and status are written in one transaction, so a re-run redoes only what did not
finish and pays nothing twice. A dry run computes everything, calls nothing billable and writes
nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core import event_loop
from leadgen_core.db.steps import db_step
from leadgen_core.enrich.accounts import night_accounts
from leadgen_core.enrich.clients import VendorConfig, openai_extractor
from leadgen_core.errors import BudgetExhausted, VendorError, is_transient
from leadgen_core.leads.inputs import CompanyEvidence, TenantScoring, load_evidence, tenant_scoring
from leadgen_core.leads.preview import PREVIEW_ROWS, LeadRow, ScoreSummary, day_summary, top_leads
from leadgen_core.leads.rationale_batch import RationaleBatcher
from leadgen_core.night import stage_status
from leadgen_core.night.stage_status import Outcome
from leadgen_core.night.stagestats import StageCounts
from leadgen_core.redaction import redact
from leadgen_core.scoring import (
    BucketThresholds,
    LeadFeatures,
    LeadScore,
    clean_llm_rationale,
    compute_features,
    score_lead,
    template_rationale,
)
from leadgen_core.scoring.rationale import BATCH_SYSTEM_PROMPT, payload_prompt, rationale_payload
from leadgen_core.scoring.score import DEFAULT_MEDIUM_THRESHOLD
from leadgen_core.settings import Settings
from leadgen_core.spend.openai_limiter import OpenAILimiter
from leadgen_core.spend.ratelimit import SharedRateLimiter
from leadgen_core.spend.spender import DryRunSkipped, Spender, open_spender
from leadgen_core.vendors.openai_extract import OpenAIExtractor

STAGE = "lead_scores"
VENDOR = "openai"
RATIONALE_MAX_TOKENS = 120  # a 60-word answer is ~80 tokens
MESSAGE_OVERHEAD_TOKENS = 16  # role markers and framing of the two chat messages
MAX_ERROR_CHARS = 500
PROMPT_VERSION = hashlib.sha256(BATCH_SYSTEM_PROMPT.encode()).hexdigest()[:12]
RATIONALE_BATCH = 10  # leads per LLM request

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

FEATURES_SQL = """
INSERT INTO lead_features (tenant_id, run_date, company_id, features, feature_hash, run_id)
VALUES (%(tenant)s, %(day)s, %(company)s, %(features)s, %(hash)s, %(run)s)
ON CONFLICT (tenant_id, run_date, company_id) DO UPDATE SET features = EXCLUDED.features,
    feature_hash = EXCLUDED.feature_hash, run_id = EXCLUDED.run_id, created_at = now()
"""
SCORES_SQL = """
INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale,
                         rationale_source, run_id)
VALUES (%(tenant)s, %(day)s, %(company)s, %(score)s, %(bucket)s, %(contributions)s, %(rationale)s,
        %(source)s, %(run)s)
ON CONFLICT (tenant_id, run_date, company_id) DO UPDATE SET score = EXCLUDED.score, bucket = EXCLUDED.bucket,
    contributions = EXCLUDED.contributions, rationale = EXCLUDED.rationale,
    rationale_source = EXCLUDED.rationale_source, run_id = EXCLUDED.run_id, created_at = now()
"""


class RationaleWriter(Protocol):
    """What the stage needs from an LLM client (`OpenAIExtractor` is one)."""

    async def complete_text(self, *, system: str, user: str, max_tokens: int) -> tuple[str, int]: ...


def _quiet(message: str) -> None:
    return None


@dataclass(frozen=True)
class ScoreContext:
    """One tenant-night of the scoring stage, as the orchestrator hands it over."""

    tenant_id: str
    day: date
    run_id: str | None
    settings: Settings
    tenant_conn: ConnFactory
    global_conn: ConnFactory
    dry_run: bool = False
    concurrency: int | None = None
    progress: Callable[[str], None] = _quiet
    environ: Mapping[str, str] | None = None  # where a tenant's own OpenAI key is read; None: os.environ
    global_statement: ConnFactory | None = None  # one statement outside a block (the limiters' bookings)
    tenant_pipe: ConnFactory | None = None  # a paid call's record, BEGIN and COMMIT pipelined with it


@dataclass(frozen=True)
class ScoredLead:
    company_id: int
    uen: str
    name: str
    features: LeadFeatures
    score: LeadScore
    rationale: str
    source: str


@dataclass
class ScoreReport:
    """What one materialisation did, and the night's totals for the metadata."""

    dry_run: bool
    pending: int
    outcomes: list[Outcome] = field(default_factory=list)
    leads: list[ScoredLead] = field(default_factory=list)
    summary: ScoreSummary = field(default_factory=ScoreSummary)  # the night's (a dry run's own)
    top: list[LeadRow] = field(default_factory=list)  # the night's best leads (a dry run's own)
    night: dict[str, int] = field(default_factory=dict)
    spent: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    forecast_calls: dict[str, int] = field(default_factory=dict)
    forecast_units: dict[str, int] = field(default_factory=dict)
    rationale_requests: int = 0  # LLM requests made (each carries up to RATIONALE_BATCH leads)

    def counts(self) -> StageCounts:
        source = Counter(o.status for o in self.outcomes) if self.dry_run else Counter(self.night)
        return StageCounts(
            items=sum(source.values()), done=source["done"], degraded=source["degraded"], failed=source["failed"]
        )

    def degraded_by_reason(self) -> dict[str, int]:
        return dict(Counter((o.reason or "-") for o in self.outcomes if o.status == "degraded"))


def thresholds_for(settings: Settings) -> BucketThresholds:
    """Buckets whose "high" is exactly the export threshold (SCORE_MIN_EXPORT)."""
    high = settings.score_min_export
    if high <= 0:
        return BucketThresholds(high=0.0000001, medium=0.0)  # everything exports: all "high"
    return BucketThresholds(high=high, medium=min(DEFAULT_MEDIUM_THRESHOLD, high / 2))


def openai_writer(settings: Settings, api_key: str | None = None) -> OpenAIExtractor | None:
    """The LLM client with API_KEY (default: the platform's), or None without a key (template rationales only)."""
    key = api_key or (settings.openai_api_key.get_secret_value() if settings.openai_api_key else None)
    if key is None:
        return None
    # the one OpenAI client factory (enrich.clients), as extraction builds it
    return openai_extractor(VendorConfig(openai_api_key=key), settings)


async def _unpaced() -> None:
    return None


def estimate_tokens(system: str, user: str) -> int:
    """An upper bound of the call's tokens: a token is never shorter than one UTF-8 byte."""
    return len(system.encode()) + len(user.encode()) + MESSAGE_OVERHEAD_TOKENS + RATIONALE_MAX_TOKENS


@dataclass
class _Run:
    ctx: ScoreContext
    scoring: TenantScoring
    thresholds: BucketThresholds
    spender: Spender
    writer: RationaleWriter | None
    batcher: RationaleBatcher | None
    secrets: tuple[str, ...] = ()  # redacted from any recorded error text

    async def rationale(self, name: str, features: LeadFeatures, score: LeadScore) -> tuple[str, str, Outcome]:
        """(text, source, outcome) with the company id left 0 for the caller to fill."""
        template = template_rationale(company_name=name, score=score, features=features)
        if self.batcher is None:
            return template, "template", Outcome(0, "done", "llm_off")
        batcher = self.batcher
        payload = rationale_payload(company_name=name, score=score, features=features)
        system, user = payload_prompt(payload)  # alone, its upper bound of tokens
        # the cache key: the same facts, name, weights and prompt always get the same answer for free
        request = {"purpose": "lead_rationale", "prompt": PROMPT_VERSION, "model": self.ctx.settings.openai_model,
                   "feature_hash": features.feature_hash(), "company": name, "weights": score.weights,
                   "thresholds": [score.thresholds.high, score.thresholds.medium]}  # fmt: skip

        async def call() -> tuple[Any, int]:
            text, tokens = await batcher.submit(payload)
            return {"text": text}, tokens

        try:
            paid = await self.spender.call(
                vendor=VENDOR, request=request, estimate=estimate_tokens(system, user), run=call
            )
        except DryRunSkipped:
            return template, "template", Outcome(0, "degraded", f"dry_run:{VENDOR}")
        except BudgetExhausted:
            return template, "template", Outcome(0, "degraded", f"budget:{VENDOR}")
        except (VendorError, TimeoutError) as exc:  # TimeoutError: the shared rate limiter is saturated
            error = redact(f"{type(exc).__name__}: {exc}", self.secrets)[:MAX_ERROR_CHARS]
            # The score is computed and stored either way; only its prose is missing, and the
            # template stands in. So even a transient OpenAI outage leaves the lead degraded, not
            # failed: a night whose rationales all failed must still reach odoo_sync (a failed item
            # everywhere would fail the asset and stop the sync). The next night that scores the
            # lead asks for its rationale again.
            reason = f"vendor_down:{VENDOR}" if is_transient(exc) else f"vendor:{VENDOR}"
            return template, "template", Outcome(0, "degraded", reason, error=error)
        value = paid.value if isinstance(paid.value, dict) else {}
        text = clean_llm_rationale(value.get("text") if isinstance(value.get("text"), str) else None)
        if text is None:
            return template, "template", Outcome(0, "degraded", "llm_rejected")
        return text, "cache" if paid.cached else "llm", Outcome(0, "done")

    async def one(self, ev: CompanyEvidence | None, company_id: int) -> tuple[Outcome, ScoredLead | None]:
        if ev is None:
            return Outcome(company_id, "skipped", "unknown_company"), None
        if ev.suppressed:
            return Outcome(company_id, "skipped", "suppressed"), None
        s = self.ctx.settings
        features = compute_features(ev.inputs, today_year=self.ctx.day.year, freemail_policy=s.freemail_policy)
        score = score_lead(features, weights=self.scoring.weights, thresholds=self.thresholds)
        text, source, res = await self.rationale(ev.name, features, score)
        detail = {"score": score.score, "bucket": score.bucket, "rationale_source": source}
        outcome = Outcome(company_id, res.status, res.reason, res.error, detail)
        return outcome, ScoredLead(company_id, ev.uen, ev.name, features, score, text, source)

    def persist(self, outcome: Outcome, lead: ScoredLead | None) -> None:
        ctx = self.ctx
        with ctx.tenant_conn() as conn:
            if lead is not None:
                key = {"tenant": ctx.tenant_id, "day": ctx.day, "run": ctx.run_id, "company": lead.company_id}
                f, sc = lead.features, lead.score
                conn.execute(
                    FEATURES_SQL, key | {"features": Jsonb(f.model_dump(mode="json")), "hash": f.feature_hash()}
                )
                scored = {"score": sc.score, "bucket": sc.bucket, "contributions": Jsonb(sc.contributions)}
                conn.execute(SCORES_SQL, key | scored | {"rationale": lead.rationale, "source": lead.source})
            stage_status.record(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE, outcome=outcome)


def _prepare(ctx: ScoreContext) -> tuple[list[int], TenantScoring, dict[int, CompanyEvidence]]:
    with ctx.tenant_conn() as conn:
        cap = ctx.settings.daily_cap_per_tenant if ctx.dry_run else None
        pending = stage_status.pending(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE, dry_run_cap=cap)
        scoring = tenant_scoring(conn, tenant_id=ctx.tenant_id)
        evidence = load_evidence(conn, tenant_id=ctx.tenant_id, day=ctx.day, company_ids=pending, scoring=scoring)
    return pending, scoring, evidence


def _finish(ctx: ScoreContext, report: ScoreReport) -> None:
    if ctx.dry_run:
        for lead in report.leads:
            report.summary.add(bucket=lead.score.bucket, source=lead.source, score=lead.score.score)
        best = sorted(report.leads, key=lambda x: (-x.score.score, -x.company_id))[:PREVIEW_ROWS]
        report.top = [LeadRow(x.name, x.uen, x.score.score, x.score.bucket, x.source, x.rationale) for x in best]
        return
    with ctx.tenant_conn() as conn:
        report.summary = day_summary(conn, tenant_id=ctx.tenant_id, day=ctx.day)
        report.top = top_leads(conn, tenant_id=ctx.tenant_id, day=ctx.day)
        report.night = stage_status.summary(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE)


async def score_night(ctx: ScoreContext, *, writer: RationaleWriter | None = None) -> ScoreReport:
    """Score every pending target of the tenant-night; WRITER None means the settings' OpenAI."""
    pending, scoring, evidence = await db_step(_prepare, ctx)
    report = ScoreReport(dry_run=ctx.dry_run, pending=len(pending))
    s = ctx.settings
    spender = await db_step(
        functools.partial(open_spender, tenant_id=ctx.tenant_id, tenant_conn=ctx.tenant_conn,
                          global_conn=ctx.global_conn, default_caps=s.vendor_caps(),
                          cache_ttl_days=s.vendor_cache_ttl_days, dry_run=ctx.dry_run, run_id=ctx.run_id,
                          tenant_pipe=ctx.tenant_pipe, statement_conn=ctx.global_statement)
    )  # fmt: skip
    # the tenant's own OpenAI account if it connected one (its key, buckets and tier), else the platform's
    accounts = await db_step(
        night_accounts, ctx.tenant_conn, tenant_id=ctx.tenant_id,
        environ=os.environ if ctx.environ is None else ctx.environ, vendors=(VENDOR,) if pending else (),
    )  # fmt: skip
    own = accounts.own.get(VENDOR)
    api_key = own.key if own is not None else (s.openai_api_key.get_secret_value() if s.openai_api_key else None)
    # the extraction stage's bucket and rate: one OpenAI account, one limit
    rate = accounts.rate(VENDOR, VendorConfig(), s)
    one = ctx.global_statement or ctx.global_conn
    limiter = SharedRateLimiter(ctx.global_conn, bucket=accounts.bucket(VENDOR), burst=rate.burst,
                                rate_per_s=rate.per_s, tenant=ctx.tenant_id, one=one)  # fmt: skip
    owned = openai_writer(s, api_key) if writer is None and pending else None
    secrets = (api_key,) if api_key else ()
    pace = limiter.acquire
    if owned is not None and api_key is not None:
        # the extraction stage's RPM/TPM buckets (same key, same model): they pace every request
        limits = accounts.openai_limits(s)
        owned.limiter = OpenAILimiter.for_tier(ctx.global_conn, api_key=api_key, model=s.openai_model,
                                               tier=limits.tier, rpm=limits.rpm, tpm=limits.tpm,
                                               tenant=ctx.tenant_id, one=one)  # fmt: skip
        pace = _unpaced
    text_writer = writer or owned
    batcher = (
        RationaleBatcher(text_writer, pace=pace, max_tokens_per_lead=RATIONALE_MAX_TOKENS, size=RATIONALE_BATCH)
        if text_writer is not None
        else None
    )
    run = _Run(ctx, scoring, thresholds_for(s), spender, text_writer, batcher, secrets)
    if run.writer is None and pending:
        ctx.progress("lead_scores: no OPENAI_API_KEY configured, rationales come from the template")
    # enough leads in flight for every worker to have a full batch request out
    semaphore = asyncio.Semaphore(max(1, ctx.concurrency or s.sched_company_concurrency) * RATIONALE_BATCH)

    async def work(company_id: int) -> None:
        async with semaphore:
            try:
                outcome, lead = await run.one(evidence.get(company_id), company_id)
            except Exception as exc:  # one company's surprise must not end the night; retried next time
                error = redact(f"{type(exc).__name__}: {exc}", run.secrets)[:MAX_ERROR_CHARS]
                outcome, lead = Outcome(company_id, "failed", "error", error), None
            if not ctx.dry_run:
                await db_step(run.persist, outcome, lead)
            report.outcomes.append(outcome)
            if lead is not None:
                report.leads.append(lead)

    try:
        await asyncio.gather(*(work(c) for c in pending))
    finally:
        if owned is not None:
            await owned.aclose()
    report.spent, report.cache_hits = dict(spender.spent), dict(spender.cache_hits)
    report.forecast_calls, report.forecast_units = dict(spender.forecast.calls), dict(spender.forecast.units)
    if report.forecast_calls.get(VENDOR):  # the leads' rationales would share requests
        report.forecast_calls[VENDOR] = math.ceil(report.forecast_calls[VENDOR] / RATIONALE_BATCH)
    report.rationale_requests = batcher.requests if batcher is not None else 0
    await db_step(_finish, ctx, report)
    ctx.progress(f"lead_scores: {len(report.leads)} scored of {len(pending)} pending")
    return report


def run_score_stage(ctx: ScoreContext, *, writer: RationaleWriter | None = None) -> ScoreReport:
    """`score_night` in a fresh event loop (the orchestrator's entry point)."""
    return event_loop.run(score_night(ctx, writer=writer))
