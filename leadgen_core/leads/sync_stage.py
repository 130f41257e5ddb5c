"""The Odoo sync stage: each scored target's company, contacts and (above the threshold) lead.

The tenant's Odoo comes from its `odoo_connections` row; the secret is read at run time from the
environment variable the row's `secret_ref` names and never leaves this process (error texts are
redacted, and a missing variable is reported by its name only). Each company is planned first:
the company partner keyed by UEN, its contacts as child partners (suppressed addresses, free-mail
under FREEMAIL_POLICY=exclude and undeliverable addresses skipped), and the crm.lead when the
score reaches SCORE_MIN_EXPORT. The plans then go to Odoo in chunks of ODOO_SYNC_CHUNK_SIZE
companies (`sync_chunk`: per model one lookup, one create, grouped writes), several chunks at a
time, with at most ODOO_MAX_IN_FLIGHT requests in flight to the tenant's database. The bucket
tags and the partner key field are settled once, before the chunks, so no two chunks ever upsert
one key. Every item gets one `odoo_sync_log` row; an item's error is logged and the batch goes on
(the company is then `failed` and retried by the next run, which the idempotent upserts make
safe). When Odoo itself is unreachable (at the first call, or UNREACHABLE_LIMIT companies in a
row cannot connect) the stage stops with an OdooError, leaving the rest pending for a
re-execution from failure. A dry run plans the same items without connecting and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

import psycopg

from leadgen_core import event_loop
from leadgen_core.db.steps import db_step
from leadgen_core.errors import ConfigError, OdooError
from leadgen_core.leads.connection import OdooConnection, load_connection
from leadgen_core.leads.inputs import CompanyEvidence, ContactFact, TenantScoring, load_evidence
from leadgen_core.leads.sync_chunk import (
    PARTNER,
    AuthRejected,
    CompanyPlan,
    LeadPlan,
    LogItem,
    dry_run_items,
    sync_chunk,
)
from leadgen_core.night import stage_status
from leadgen_core.night.stage_status import Outcome
from leadgen_core.night.stagestats import StageCounts
from leadgen_core.odoo import RetryPolicy, make_client
from leadgen_core.odoo.batch import BucketTags, is_auth_error, resolve_bucket_tags
from leadgen_core.odoo.limited import LimitedClient
from leadgen_core.odoo.sync import lead_key, partner_key_field
from leadgen_core.scoring import ScoreWeights, classify_title, is_freemail
from leadgen_core.scoring.features import SENIORITY_RANKS, TIER_VALUES
from leadgen_core.settings import Settings

STAGE = "odoo_sync"
LEAD = "crm.lead"
UNDELIVERABLE = frozenset({"invalid", "do_not_mail", "spamtrap", "abuse"})
# After this many companies in a row fail to connect, the stage stops: Odoo is down, not an item.
UNREACHABLE_LIMIT = 3

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

SCORES_SQL = """
SELECT company_id, score, bucket, rationale FROM lead_scores
WHERE tenant_id = %s AND run_date = %s AND company_id = ANY(%s)
"""
# Targets the scoring stage skipped for good (suppressed, unknown): nothing will ever be synced.
NOT_SCORED_SQL = """
SELECT company_id FROM company_stage_status
WHERE tenant_id = %s AND run_date = %s AND stage = 'lead_scores' AND status = 'skipped' AND company_id = ANY(%s)
"""
LOG_SQL = """
INSERT INTO odoo_sync_log (tenant_id, run_date, company_id, model, item_key, action, odoo_id, status, error)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def _quiet(message: str) -> None:
    return None


@dataclass(frozen=True)
class SyncContext:
    """One tenant-night of the sync stage, as the orchestrator hands it over."""

    tenant_id: str
    day: date
    settings: Settings
    tenant_conn: ConnFactory
    environ: Mapping[str, str]
    dry_run: bool = False
    retry: RetryPolicy | None = None
    progress: Callable[[str], None] = _quiet


@dataclass
class SyncReport:
    dry_run: bool
    pending: int
    unscored: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)  # "<model>:<action>" -> count
    odoo_calls: int = 0  # requests sent to Odoo (lookups, creates, writes)
    night: dict[str, int] = field(default_factory=dict)

    def counts(self) -> StageCounts:
        source = Counter(o.status for o in self.outcomes) if self.dry_run else Counter(self.night)
        return StageCounts(
            items=sum(source.values()), done=source["done"], degraded=source["degraded"], failed=source["failed"]
        )

    @property
    def errors(self) -> int:
        return sum(n for k, n in self.items.items() if k.endswith(":error"))

    @property
    def leads_exported(self) -> int:
        return sum(n for k, n in self.items.items() if k.startswith(LEAD) and k.split(":")[1] in _WRITTEN)


_WRITTEN = frozenset({"created", "updated", "unchanged", "would_write"})


def _rank(fact: ContactFact) -> tuple[float, int]:
    tier = TIER_VALUES.get(fact.verification or "unverified", 0.0)
    seniority = classify_title(fact.title)
    return tier, SENIORITY_RANKS.get(seniority, 0) if seniority else 0


def _skip_reason(fact: ContactFact, policy: str) -> str | None:
    assert fact.email is not None
    if fact.suppressed:
        return "suppressed"
    freemail = fact.freemail if fact.freemail is not None else is_freemail(fact.email)
    if freemail and policy == "exclude":
        return "freemail"
    if fact.verification in UNDELIVERABLE:
        return "undeliverable"
    return None


def _unreachable(outcome: Outcome) -> bool:
    return outcome.status == "failed" and _cannot_connect(outcome.error or "")


def _cannot_connect(text: str) -> bool:
    return "connection failed" in text


def _plan(ev: CompanyEvidence, score: tuple[float, str, str], *, ctx: SyncContext) -> CompanyPlan:
    """What the company should become in Odoo: partner, contacts (best first), lead or not."""
    value, bucket, rationale = score
    policy = ctx.settings.freemail_policy
    # a mailbox without a person (info@, sales@) is the company's own address, not a contact
    mailboxes = [f for f in ev.contacts if not f.person and f.email and _skip_reason(f, policy) is None]
    mailbox = max(mailboxes, key=_rank, default=None)
    people: list[ContactFact] = []
    skipped: list[LogItem] = []
    for fact in ev.contacts:
        if fact.email is None or not fact.person:
            continue
        reason = _skip_reason(fact, policy)
        if reason is None:
            people.append(fact)
        else:
            skipped.append(LogItem(ev.company_id, PARTNER, fact.email, reason, None, "skipped"))
    key = lead_key(tenant=ctx.tenant_id, uen=ev.uen)
    lead = LeadPlan(key, value, bucket, rationale) if value >= ctx.settings.score_min_export else None
    return CompanyPlan(
        company_id=ev.company_id, uen=ev.uen, name=ev.name, website=ev.website, phone=ev.phone,
        mailbox=mailbox.email if mailbox else None, contacts=tuple(sorted(people, key=_rank, reverse=True)),
        skipped=tuple(skipped), lead_key=key, lead=lead,
    )  # fmt: skip


@dataclass(frozen=True)
class _Prepared:
    connection: OdooConnection
    pending: list[int]
    scores: dict[int, tuple[float, str, str]]
    evidence: dict[int, CompanyEvidence]
    not_scored: list[int]


# Weights and ICP ranges do not matter to the sync: it reads identities, contacts and suppression.
NEUTRAL_SCORING = TenantScoring(weights=ScoreWeights(), employee_range=None, year_range=None)


def _prepare(ctx: SyncContext) -> _Prepared:
    t, day = ctx.tenant_id, ctx.day
    with ctx.tenant_conn() as conn:
        connection = load_connection(conn, tenant_id=t)
        cap = ctx.settings.daily_cap_per_tenant if ctx.dry_run else None
        pending = stage_status.pending(conn, tenant_id=t, day=day, stage=STAGE, dry_run_cap=cap)
        rows = conn.execute(SCORES_SQL, (t, day, pending)).fetchall()
        scores = {int(c): (float(s), str(b), str(r)) for c, s, b, r in rows}
        evidence = load_evidence(conn, tenant_id=t, day=day, company_ids=list(scores), scoring=NEUTRAL_SCORING)
        not_scored = [int(r[0]) for r in conn.execute(NOT_SCORED_SQL, (t, day, pending)).fetchall()]
    return _Prepared(connection, pending, scores, evidence, not_scored)


def _persist(ctx: SyncContext, done: Sequence[tuple[Outcome, list[LogItem]]]) -> None:
    """Every item row and company outcome of a chunk, in one transaction."""
    with ctx.tenant_conn() as conn:
        rows = [(ctx.tenant_id, ctx.day, i.company_id, i.model, i.item_key, i.action, i.odoo_id, i.status, i.error)
                for _, items in done for i in items]  # fmt: skip
        if rows:
            with conn.cursor() as cur:
                cur.executemany(LOG_SQL, rows)
        for outcome, _ in done:
            stage_status.record(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE, outcome=outcome)


async def sync_night(ctx: SyncContext) -> SyncReport:
    """Sync every pending scored target of the tenant-night to the tenant's Odoo, in batched chunks."""
    prep = await db_step(_prepare, ctx)
    report = SyncReport(dry_run=ctx.dry_run, pending=len(prep.pending))
    report.unscored = len([c for c in prep.pending if c not in prep.scores and c not in prep.not_scored])
    closed: list[tuple[Outcome, list[LogItem]]] = [
        (Outcome(c, "skipped", "not_scored"), []) for c in prep.pending if c in prep.not_scored
    ]
    plans: list[CompanyPlan] = []
    for company_id in prep.pending:
        ev = prep.evidence.get(company_id)
        if ev is None or company_id in prep.not_scored:
            continue  # not scored yet: left pending for a later run
        if ev.suppressed:
            skip = LogItem(ev.company_id, PARTNER, ev.uen, "suppressed", None, "skipped")
            closed.append((Outcome(company_id, "skipped", "suppressed"), [skip]))
            continue
        plans.append(_plan(ev, prep.scores[company_id], ctx=ctx))
    if ctx.dry_run:
        _tally(report, closed)
        _tally(report, [(Outcome(p.company_id, "done"), dry_run_items(p)) for p in plans])
    else:
        if closed:
            await db_step(_persist, ctx, closed)
        _tally(report, closed)
        if plans:
            await _sync_plans(ctx, prep.connection, plans, report)
        report.night = await db_step(_night, ctx)
    ctx.progress(f"odoo_sync: {len(report.outcomes)} companies, {report.errors} item errors, "
                 f"{report.odoo_calls} Odoo calls")  # fmt: skip
    return report


def _tally(report: SyncReport, done: Sequence[tuple[Outcome, list[LogItem]]]) -> None:
    for outcome, items in done:
        report.outcomes.append(outcome)
        report.items.update(f"{i.model}:{i.action if i.status != 'error' else 'error'}" for i in items)


async def _sync_plans(ctx: SyncContext, odoo: OdooConnection, plans: list[CompanyPlan], report: SyncReport) -> None:
    """PLANS in chunks, a few chunks at a time; every request goes through one in-flight limit."""
    secrets = (odoo.secret(ctx.environ),)
    inner = make_client(protocol=odoo.protocol, base_url=odoo.base_url, db=odoo.db_name, login=odoo.login,
                        secret=secrets[0], retry=ctx.retry, tenant=ctx.tenant_id,
                        allow_private_addresses=ctx.settings.odoo_allow_private_addresses)  # fmt: skip
    in_flight = ctx.settings.odoo_max_in_flight
    client = LimitedClient(inner, max_in_flight=in_flight)
    size = ctx.settings.odoo_sync_chunk_size
    chunks = [plans[i : i + size] for i in range(0, len(plans), size)]
    # one chunk more than the request slots, so a chunk writing its log never leaves a slot idle
    gate = asyncio.Semaphore(in_flight + 1)
    unreachable = 0  # companies in a row whose Odoo connection failed

    async def run(chunk: list[CompanyPlan], key_field: str, tags: BucketTags | None) -> None:
        nonlocal unreachable
        async with gate:
            done = await sync_chunk(client, chunk, key_field=key_field, tags=tags, secrets=secrets)
            await db_step(_persist, ctx, done)
        _tally(report, done)
        for outcome, _ in done:
            unreachable = unreachable + 1 if _unreachable(outcome) else 0
        if unreachable >= UNREACHABLE_LIMIT:
            raise _unreachable_error(ctx, odoo, f"{unreachable} companies in a row could not connect")

    try:
        try:
            key_field = await partner_key_field(client)
            buckets = sorted({p.lead.bucket for p in plans if p.lead is not None})
            tags = await resolve_bucket_tags(client, buckets) if buckets else None
        except OdooError as exc:
            if is_auth_error(exc):
                raise AuthRejected("odoo rejected the credentials") from None
            if _cannot_connect(str(exc)):
                raise _unreachable_error(ctx, odoo, "it could not be reached") from None
            raise
        tasks = [asyncio.create_task(run(chunk, key_field, tags)) for chunk in chunks]
        try:
            await asyncio.gather(*tasks)  # the first error stops the night, as itself (not in a group)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    except AuthRejected:
        raise ConfigError(
            f"Odoo at {odoo.base_url} rejected the credentials of tenant {ctx.tenant_id} "
            f"(login {odoo.login!r}, secret from {odoo.secret_env})"
        ) from None
    finally:
        report.odoo_calls = client.total_calls
        await client.close()


def _unreachable_error(ctx: SyncContext, odoo: OdooConnection, why: str) -> OdooError:
    return OdooError(
        f"Odoo at {odoo.base_url} is unreachable for tenant {ctx.tenant_id}: {why}; "
        "the rest are left pending for a re-execution"
    )


def _night(ctx: SyncContext) -> dict[str, int]:
    with ctx.tenant_conn() as conn:
        return stage_status.summary(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE)


def run_sync_stage(ctx: SyncContext) -> SyncReport:
    """`sync_night` in a fresh event loop (the orchestrator's entry point)."""
    return event_loop.run(sync_night(ctx))
