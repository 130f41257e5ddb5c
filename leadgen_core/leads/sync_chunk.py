"""One chunk of the Odoo sync: the companies, then their contacts, then their leads, each model batched.

A chunk costs at most one lookup, one create and a few grouped writes per model, whatever its size
(see `leadgen_core.odoo.batch`), and each item still gets its own result and `odoo_sync_log` row.
A company whose partner fails keeps its contacts and lead out of the chunk (they need its id);
an item's error marks its company `failed`, to be redone by the next run, and never its
neighbours. Credentials that Odoo refuses raise `AuthRejected`, and a URL that has come to lead to
an address no Odoo may be at (`leadgen_core.odoo.guard`) raises `OdooAddressForbidden`: every item
would fail alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from leadgen_core.errors import ConfigError, OdooAddressForbidden
from leadgen_core.leads.inputs import ContactFact
from leadgen_core.night.stage_status import Outcome
from leadgen_core.odoo.batch import (
    BucketTags,
    ItemResult,
    Wanted,
    companies_domain,
    contact_key,
    contact_key_of,
    contacts_domain,
    is_auth_error,
    leads_domain,
    upsert_batch,
)
from leadgen_core.odoo.client import OdooClient
from leadgen_core.odoo.sync import (
    LEAD_KEY_FIELD,
    LEAD_ON_CREATE,
    Record,
    SyncOutcome,
    company_vals,
    contact_vals,
    lead_vals,
    upsert_company,
    upsert_contact,
    upsert_lead,
    with_bucket_tag,
)
from leadgen_core.redaction import redact

PARTNER, LEAD = "res.partner", "crm.lead"
MAX_ERROR_CHARS = 500


class AuthRejected(ConfigError):
    """Odoo refused the tenant's credentials: every item would fail the same way."""


@dataclass(frozen=True)
class LogItem:
    company_id: int
    model: str
    item_key: str
    action: str
    odoo_id: int | None
    status: str  # ok | error | skipped
    error: str | None = None


@dataclass(frozen=True)
class LeadPlan:
    key: str
    score: float
    bucket: str
    rationale: str


@dataclass(frozen=True)
class CompanyPlan:
    """What one company should become in Odoo, decided before any call."""

    company_id: int
    uen: str
    name: str
    website: str | None
    phone: str | None
    mailbox: str | None  # the company's own address (info@), not a person's
    contacts: tuple[ContactFact, ...]  # people to sync, best first
    skipped: tuple[LogItem, ...]  # contacts left out, with their reasons
    lead_key: str
    lead: LeadPlan | None  # None: below the export threshold


def dry_run_items(plan: CompanyPlan) -> list[LogItem]:
    """The items a real sync of PLAN would write, as `would_write` rows; nothing is sent."""
    cid = plan.company_id
    items = [LogItem(cid, PARTNER, plan.uen, "would_write", None, "ok"), *plan.skipped]
    items += [LogItem(cid, PARTNER, str(f.email), "would_write", None, "ok") for f in plan.contacts]
    exported = LogItem(cid, LEAD, plan.lead_key, "would_write", None, "ok")
    items.append(_below_threshold(plan) if plan.lead is None else exported)
    return items


def _below_threshold(plan: CompanyPlan) -> LogItem:
    return LogItem(plan.company_id, LEAD, plan.lead_key, "below_threshold", None, "skipped")


def _const(vals: Mapping[str, Any]) -> Callable[[Record | None], Mapping[str, Any]]:
    return lambda _found: vals


def _fields(wanted: Sequence[Mapping[str, Any]], *extra: str) -> list[str]:
    return list(dict.fromkeys([k for vals in wanted for k in vals] + list(extra)))


class _Results:
    """Each company's log items, in the order they happened."""

    def __init__(self, plans: Sequence[CompanyPlan], secrets: tuple[str, ...]) -> None:
        self.items: dict[int, list[LogItem]] = {p.company_id: [] for p in plans}
        self._secrets = secrets

    def add(self, company_id: int, model: str, key: str, result: ItemResult) -> SyncOutcome | None:
        if isinstance(result, SyncOutcome):
            self.items[company_id].append(LogItem(company_id, model, key, result.action, result.odoo_id, "ok"))
            return result
        if is_auth_error(result):
            raise AuthRejected("odoo rejected the credentials") from None
        if isinstance(result, OdooAddressForbidden):  # the URL now leads somewhere no Odoo may be: stop
            raise result
        error = redact(f"{type(result).__name__}: {result}", self._secrets)[:MAX_ERROR_CHARS]
        self.items[company_id].append(LogItem(company_id, model, key, "error", None, "error", error))
        return None


async def sync_chunk(
    client: OdooClient,
    plans: Sequence[CompanyPlan],
    *,
    key_field: str,
    tags: BucketTags | None,
    secrets: tuple[str, ...],
) -> list[tuple[Outcome, list[LogItem]]]:
    """Sync PLANS to Odoo in a few batched calls; each company's outcome and log items."""
    res = _Results(plans, secrets)
    partners = await _companies(client, plans, key_field=key_field, res=res)
    synced = await _contacts(client, plans, partners=partners, res=res)
    exported = [p for p in plans if p.lead is not None and p.company_id in partners]
    await _leads(client, exported, partners=partners, synced=synced, tags=tags, res=res)
    out = []
    for plan in plans:
        items = [*res.items[plan.company_id], *plan.skipped]
        if plan.lead is None and plan.company_id in partners:
            items.append(_below_threshold(plan))
        errors = [i.error or "" for i in items if i.status == "error"]
        if errors:
            out.append((Outcome(plan.company_id, "failed", "odoo", error="; ".join(errors)[:2000]), items))
            continue
        detail = {"partner_id": partners[plan.company_id], "contacts": len(synced.get(plan.company_id, [])),
                  "lead": plan.lead is not None}  # fmt: skip
        out.append((Outcome(plan.company_id, "done", detail=detail), items))
    return out


async def _companies(
    client: OdooClient, plans: Sequence[CompanyPlan], *, key_field: str, res: _Results
) -> dict[int, int]:
    """company_id -> partner id, for the companies whose partner is in Odoo now."""
    wanted: list[Wanted] = []
    owners: list[CompanyPlan] = []
    for p in plans:
        try:
            vals = company_vals(uen=p.uen, name=p.name, website=p.website, phone=p.phone, email=p.mailbox,
                                key_field=key_field)  # fmt: skip
        except ValueError as exc:
            res.add(p.company_id, PARTNER, p.uen, exc)
            continue
        single = partial(upsert_company, client, uen=p.uen, name=p.name, website=p.website, phone=p.phone,
                         email=p.mailbox, key_field=key_field)  # fmt: skip
        wanted.append(Wanted(match=vals[key_field], build=_const(vals), single=single))
        owners.append(p)
    results = await upsert_batch(
        client, model=PARTNER, wanted=wanted, domain=companies_domain(key_field, [w.match for w in wanted]),
        key_of=lambda row: row.get(key_field) if isinstance(row.get(key_field), str) else None,
        fields=_fields([w.build(None) for w in wanted]),
    )  # fmt: skip
    partners: dict[int, int] = {}
    for p, result in zip(owners, results, strict=True):
        done = res.add(p.company_id, PARTNER, p.uen, result)
        if done is not None:
            partners[p.company_id] = done.odoo_id
    return partners


async def _contacts(
    client: OdooClient, plans: Sequence[CompanyPlan], *, partners: Mapping[int, int], res: _Results
) -> dict[int, list[ContactFact]]:
    """company_id -> the contacts now in Odoo, best first."""
    wanted: list[Wanted] = []
    owners: list[tuple[int, ContactFact]] = []
    for p in plans:
        parent = partners.get(p.company_id)
        if parent is None:
            continue
        for fact in p.contacts:
            email = str(fact.email)
            kw: dict[str, Any] = {"parent_id": parent, "email": email, "name": fact.name or email,
                                  "title": fact.title, "phone": fact.phone}  # fmt: skip
            try:
                vals = contact_vals(**kw)
            except ValueError as exc:
                res.add(p.company_id, PARTNER, email, exc)
                continue
            single = partial(upsert_contact, client, **kw)
            wanted.append(Wanted(match=contact_key(parent, email), build=_const(vals), single=single))
            owners.append((p.company_id, fact))
    pairs = [(int(w.build(None)["parent_id"]), str(w.build(None)["email"])) for w in wanted]
    results = await upsert_batch(
        client, model=PARTNER, wanted=wanted, domain=contacts_domain(pairs), key_of=contact_key_of,
        fields=_fields([w.build(None) for w in wanted]),
    )  # fmt: skip
    synced: dict[int, list[ContactFact]] = {}
    for (company_id, fact), result in zip(owners, results, strict=True):
        if res.add(company_id, PARTNER, str(fact.email), result) is not None:
            synced.setdefault(company_id, []).append(fact)
    return synced


async def _leads(
    client: OdooClient,
    plans: Sequence[CompanyPlan],
    *,
    partners: Mapping[int, int],
    synced: Mapping[int, list[ContactFact]],
    tags: BucketTags | None,
    res: _Results,
) -> None:
    wanted: list[Wanted] = []
    owners: list[CompanyPlan] = []
    for p in plans:
        lead = p.lead
        assert lead is not None  # the caller passes only exported companies
        assert tags is not None  # resolved for every exported bucket before the chunks
        people = synced.get(p.company_id) or []
        best = people[0] if people else None  # contacts come best first
        kw: dict[str, Any] = {"key": lead.key, "partner_id": partners[p.company_id], "name": p.name,
                              "score": lead.score, "bucket": lead.bucket, "rationale": lead.rationale,
                              "contact_name": best.name if best else None,
                              "contact_email": best.email if best else None}  # fmt: skip
        try:
            vals = lead_vals(**kw)
        except ValueError as exc:
            res.add(p.company_id, LEAD, p.lead_key, exc)
            continue
        tag_id, others = tags.of(lead.bucket)
        build = with_bucket_tag(vals, tag_id=tag_id, other_bucket_tags=others)
        single = partial(upsert_lead, client, **kw)
        wanted.append(Wanted(match=lead.key, build=build, single=single, on_create=LEAD_ON_CREATE))
        owners.append(p)
    results = await upsert_batch(
        client, model=LEAD, wanted=wanted, domain=leads_domain([w.match for w in wanted]),
        key_of=lambda row: row.get(LEAD_KEY_FIELD) if isinstance(row.get(LEAD_KEY_FIELD), str) else None,
        fields=_fields([w.build(None) for w in wanted], "tag_ids"),
    )  # fmt: skip
    for p, result in zip(owners, results, strict=True):
        res.add(p.company_id, LEAD, p.lead_key, result)
