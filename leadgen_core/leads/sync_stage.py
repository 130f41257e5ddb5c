"""The Odoo sync stage: each scored target's company, contacts and (above the threshold) lead.

The tenant's Odoo comes from its `odoo_connections` row; the secret is read at run time from the
environment variable the row's `secret_ref` names and never leaves this process (error texts are
redacted, and a missing variable is reported by its name only). Per company, in order: the
company partner keyed by UEN, its contacts as child partners (suppressed addresses, free-mail
under FREEMAIL_POLICY=exclude and undeliverable addresses skipped), and the crm.lead when the
score reaches SCORE_MIN_EXPORT. Every item gets one `odoo_sync_log` row; an item's error is
logged and the batch goes on (the company is then `failed` and retried by the next run, which the
idempotent upserts make safe). When Odoo itself is unreachable (UNREACHABLE_LIMIT companies in a
row cannot connect) the stage stops with an OdooError, leaving the rest pending for a
re-execution from failure, instead of failing every company slowly. Companies run one at a
time: the sync layer does not guard concurrent upserts of one key (the bucket tags). A dry run
plans the same items without connecting to Odoo and writes nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import cast

import psycopg

from leadgen_core import stage_status
from leadgen_core.errors import ConfigError, OdooError
from leadgen_core.leads.connection import OdooConnection, load_connection
from leadgen_core.leads.inputs import CompanyEvidence, ContactFact, TenantScoring, load_evidence
from leadgen_core.odoo import OdooClient, OdooServerError, RetryPolicy, SyncOutcome, make_client
from leadgen_core.odoo.client import redact
from leadgen_core.odoo.sync import lead_key, partner_key_field, upsert_company, upsert_contact, upsert_lead
from leadgen_core.scoring import ScoreWeights, classify_title, is_freemail
from leadgen_core.scoring.features import SENIORITY_RANKS, TIER_VALUES
from leadgen_core.settings import Settings
from leadgen_core.stage_status import Outcome
from leadgen_core.stagestats import StageCounts

STAGE = "odoo_sync"
PARTNER, LEAD = "res.partner", "crm.lead"
MAX_ERROR_CHARS = 500
UNDELIVERABLE = frozenset({"invalid", "do_not_mail", "spamtrap", "abuse"})
# After this many companies in a row fail to connect, the stage stops: Odoo is down, not an item.
UNREACHABLE_LIMIT = 3
AUTH_ODOO_ERRORS = frozenset({"odoo.exceptions.AccessDenied", "werkzeug.exceptions.Unauthorized"})

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


@dataclass(frozen=True)
class LogItem:
    company_id: int
    model: str
    item_key: str
    action: str
    odoo_id: int | None
    status: str  # ok | error | skipped
    error: str | None = None


@dataclass
class SyncReport:
    dry_run: bool
    pending: int
    unscored: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    items: Counter[str] = field(default_factory=Counter)  # "<model>:<action>" -> count
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
    return outcome.status == "failed" and "connection failed" in (outcome.error or "")


def _is_auth_error(exc: Exception) -> bool:
    if not isinstance(exc, OdooServerError):
        return False
    return exc.http_status in (401, 403) or exc.odoo_name in AUTH_ODOO_ERRORS or "access denied" in str(exc).lower()


class AuthRejected(ConfigError):
    """Odoo refused the tenant's credentials: every item would fail the same way."""


@dataclass
class _Company:
    """One company's items: each upsert runs, is logged, and never raises except for bad credentials."""

    ev: CompanyEvidence
    secrets: tuple[str, ...]
    dry_run: bool
    items: list[LogItem] = field(default_factory=list)

    def skip(self, model: str, key: str, reason: str) -> None:
        self.items.append(LogItem(self.ev.company_id, model, key, reason, None, "skipped"))

    async def upsert(self, model: str, key: str, call: Callable[[], Awaitable[SyncOutcome]]) -> SyncOutcome | None:
        if self.dry_run:
            self.items.append(LogItem(self.ev.company_id, model, key, "would_write", None, "ok"))
            return SyncOutcome("unchanged", model, 0)
        try:
            done = await call()
        except Exception as exc:  # an item's failure is logged; the batch goes on
            if _is_auth_error(exc):
                raise AuthRejected("odoo rejected the credentials") from None
            error = redact(f"{type(exc).__name__}: {exc}", self.secrets)[:MAX_ERROR_CHARS]
            self.items.append(LogItem(self.ev.company_id, model, key, "error", None, "error", error))
            return None
        self.items.append(LogItem(self.ev.company_id, model, key, done.action, done.odoo_id, "ok"))
        return done


class _PartnerKey:
    """The res.partner field for UENs, asked of the tenant's Odoo once, when first needed."""

    def __init__(self, client: OdooClient | None) -> None:
        self._client = client
        self._field: str | None = None

    async def get(self) -> str:
        if self._field is None:
            if self._client is None:
                raise RuntimeError("no Odoo client")
            self._field = await partner_key_field(self._client)
        return self._field


async def _sync_company(
    client: OdooClient | None,
    ev: CompanyEvidence,
    score: tuple[float, str, str],
    *,
    ctx: SyncContext,
    secrets: tuple[str, ...],
    partner_key: _PartnerKey,
) -> tuple[Outcome, list[LogItem]]:
    value, bucket, rationale = score
    key = lead_key(tenant=ctx.tenant_id, uen=ev.uen)
    run = _Company(ev, secrets, ctx.dry_run)
    if ev.suppressed:
        run.skip(PARTNER, ev.uen, "suppressed")
        return Outcome(ev.company_id, "skipped", "suppressed"), run.items
    c = cast(OdooClient, client)
    policy = ctx.settings.freemail_policy
    # a mailbox without a person (info@, sales@) is the company's own address, not a contact
    mailboxes = [f for f in ev.contacts if not f.person and f.email and _skip_reason(f, policy) is None]
    mailbox = max(mailboxes, key=_rank, default=None)

    async def company() -> SyncOutcome:
        return await upsert_company(c, uen=ev.uen, name=ev.name, website=ev.website, phone=ev.phone,
                                    email=mailbox.email if mailbox else None,
                                    key_field=await partner_key.get())  # fmt: skip

    partner = await run.upsert(PARTNER, ev.uen, company)
    if partner is None:
        return Outcome(ev.company_id, "failed", "odoo", error=run.items[-1].error), run.items
    synced: list[ContactFact] = []
    for fact in ev.contacts:
        if fact.email is None or not fact.person:
            continue
        reason = _skip_reason(fact, policy)
        if reason is not None:
            run.skip(PARTNER, fact.email, reason)
            continue
        contact = partial(upsert_contact, c, parent_id=partner.odoo_id, email=fact.email,
                          name=fact.name or fact.email, title=fact.title, phone=fact.phone)  # fmt: skip
        if await run.upsert(PARTNER, fact.email, contact) is not None:
            synced.append(fact)
    exported = value >= ctx.settings.score_min_export
    if exported:
        best = max(synced, key=_rank, default=None)
        lead = partial(upsert_lead, c, key=key, partner_id=partner.odoo_id, name=ev.name, score=value,
                       bucket=bucket, rationale=rationale, contact_name=best.name if best else None,
                       contact_email=best.email if best else None)  # fmt: skip
        await run.upsert(LEAD, key, lead)
    else:
        run.skip(LEAD, key, "below_threshold")
    errors = [i.error for i in run.items if i.status == "error"]
    if errors:
        return Outcome(ev.company_id, "failed", "odoo", error="; ".join(e or "" for e in errors)[:2000]), run.items
    detail = {"partner_id": partner.odoo_id, "contacts": len(synced), "lead": exported}
    return Outcome(ev.company_id, "done", detail=detail), run.items


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
        pending = stage_status.pending(conn, tenant_id=t, day=day, stage=STAGE)
        rows = conn.execute(SCORES_SQL, (t, day, pending)).fetchall()
        scores = {int(c): (float(s), str(b), str(r)) for c, s, b, r in rows}
        evidence = load_evidence(conn, tenant_id=t, day=day, company_ids=list(scores), scoring=NEUTRAL_SCORING)
        not_scored = [int(r[0]) for r in conn.execute(NOT_SCORED_SQL, (t, day, pending)).fetchall()]
    return _Prepared(connection, pending, scores, evidence, not_scored)


def _persist(ctx: SyncContext, outcome: Outcome, items: list[LogItem]) -> None:
    with ctx.tenant_conn() as conn:
        for i in items:
            row = (i.company_id, i.model, i.item_key, i.action, i.odoo_id, i.status, i.error)
            conn.execute(LOG_SQL, (ctx.tenant_id, ctx.day, *row))
        stage_status.record(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE, outcome=outcome)


async def sync_night(ctx: SyncContext) -> SyncReport:
    """Sync every pending scored target of the tenant-night to the tenant's Odoo."""
    prep = await asyncio.to_thread(_prepare, ctx)
    odoo = prep.connection
    report = SyncReport(dry_run=ctx.dry_run, pending=len(prep.pending))
    report.unscored = len([c for c in prep.pending if c not in prep.scores and c not in prep.not_scored])
    client: OdooClient | None = None
    secrets: tuple[str, ...] = ()
    if not ctx.dry_run and prep.evidence:
        secrets = (odoo.secret(ctx.environ),)
        client = make_client(protocol=odoo.protocol, base_url=odoo.base_url, db=odoo.db_name, login=odoo.login,
                             secret=secrets[0], retry=ctx.retry)  # fmt: skip
    partner_key = _PartnerKey(client)
    unreachable = 0  # companies in a row whose Odoo connection failed
    try:
        for company_id in prep.pending:
            ev = prep.evidence.get(company_id)
            items: list[LogItem] = []
            if company_id in prep.not_scored:
                outcome = Outcome(company_id, "skipped", "not_scored")
            elif ev is None:
                continue  # not scored yet: left pending for a later run
            else:
                try:
                    outcome, items = await _sync_company(
                        client, ev, prep.scores[company_id], ctx=ctx, secrets=secrets, partner_key=partner_key
                    )
                except AuthRejected:
                    raise ConfigError(
                        f"Odoo at {odoo.base_url} rejected the credentials of tenant {ctx.tenant_id} "
                        f"(login {odoo.login!r}, secret from {odoo.secret_env})"
                    ) from None
            if not ctx.dry_run:
                await asyncio.to_thread(_persist, ctx, outcome, items)
            report.outcomes.append(outcome)
            report.items.update(f"{i.model}:{i.action if i.status != 'error' else 'error'}" for i in items)
            unreachable = unreachable + 1 if _unreachable(outcome) else 0
            if unreachable >= UNREACHABLE_LIMIT:
                raise OdooError(
                    f"Odoo at {odoo.base_url} is unreachable for tenant {ctx.tenant_id}: {unreachable} companies "
                    "in a row could not connect; the rest are left pending for a re-execution"
                )
    finally:
        if client is not None:
            await client.close()
    if not ctx.dry_run:
        report.night = await asyncio.to_thread(_night, ctx)
    ctx.progress(f"odoo_sync: {len(report.outcomes)} companies, {report.errors} item errors")
    return report


def _night(ctx: SyncContext) -> dict[str, int]:
    with ctx.tenant_conn() as conn:
        return stage_status.summary(conn, tenant_id=ctx.tenant_id, day=ctx.day, stage=STAGE)


def run_sync_stage(ctx: SyncContext) -> SyncReport:
    """`sync_night` in a fresh event loop (the orchestrator's entry point)."""
    return asyncio.run(sync_night(ctx))
