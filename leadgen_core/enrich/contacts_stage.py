"""Stage `contacts`: people and addresses from the crawl and the extraction, Lusha when none.

Per company: the crawl's addresses and the extraction's addresses and key people become contacts
(an address whose local part spells a named person's name gets that person's name and title),
deduplicated globally by lower(email), with a `lead_emails` row each. Addresses the tenant has
suppressed (the address or its domain) are never stored by this tenant's run and never count as
usable. Free-mail addresses are dropped under FREEMAIL_POLICY=exclude and kept (scoring caps
their tier) under low_confidence.

Only when the company has no usable address at all is Lusha asked, through the Spender: the
ledger counts contact lookups (LUSHA_MAX_CONTACT_LOOKUPS), one reserved per lookup and released
when Lusha charged nothing (a miss). Lusha's own credits are reported in the metadata.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from leadgen_core.enrich import contacts_store, store
from leadgen_core.enrich.contacts_store import Candidate
from leadgen_core.enrich.context import EnrichContext, Toolkit, open_toolkit
from leadgen_core.enrich.runner import StageReport, finish_report, pending_companies, run_companies
from leadgen_core.scoring.freemail import is_freemail
from leadgen_core.stage_status import Outcome
from leadgen_core.suppression import Suppression, load_suppression
from leadgen_core.vendors.openai_extract import EMAIL_RE

STAGE = "contacts"
LUSHA_LOOKUP_UNITS = 1
MIN_NAME_TOKENS = 2
_LOCAL_SPLIT = re.compile(r"[._\-+]+")
_NAME_WORDS = re.compile(r"[a-z]+")


def clean_email(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email if len(email) <= 254 and EMAIL_RE.match(email) else None


def _person_for(email: str, people: Sequence[tuple[str, str | None]]) -> tuple[str, str | None] | None:
    """The named person whose name the address's local part spells ("wei.tan@" is Wei Ling Tan)."""
    tokens = [t for t in _LOCAL_SPLIT.split(email.split("@", 1)[0]) if t.isalpha()]
    if len(tokens) < MIN_NAME_TOKENS:
        return None
    for name, title in people:
        if set(tokens) <= set(_NAME_WORDS.findall(name.lower())):
            return name, title
    return None


def gather(snap: store.Snapshot | None, facts: dict[str, Any] | None) -> list[Candidate]:
    """Every contact the crawl and the extraction saw, one per address, people last."""
    people: list[tuple[str, str | None]] = []
    for p in (facts or {}).get("key_people") or []:
        if isinstance(p, dict) and isinstance(p.get("name"), str) and p["name"].strip():
            people.append((p["name"].strip(), p.get("title") if isinstance(p.get("title"), str) else None))
    found: dict[str, Candidate] = {}
    sources = [("crawl", snap.emails if snap else ()), ("extraction", (facts or {}).get("emails") or [])]
    for source, emails in sources:
        for raw in emails:
            email = clean_email(raw)
            if email and email not in found:
                person = _person_for(email, people)
                found[email] = Candidate(email, person[0] if person else None, person[1] if person else None, source)
    named = {c.name for c in found.values() if c.name}
    rest = [Candidate(None, name, title, "extraction") for name, title in people if name not in named]
    return [*found.values(), *rest]


def usable(emails: Iterable[str | None], *, suppress: Suppression, policy: str) -> list[str]:
    return [
        e for e in emails if e and not suppress.blocks(e) and not (policy == "exclude" and is_freemail(e))
    ]  # fmt: skip


def admit(kit: Toolkit, candidates: list[Candidate], *, suppress: Suppression, policy: str) -> list[Candidate]:
    """The candidates this tenant may store: suppressed and (by policy) free-mail addresses dropped."""
    kept: list[Candidate] = []
    for c in candidates:
        if c.email is not None and suppress.blocks(c.email):
            kit.count("suppressed_skipped")
            continue
        if c.email is not None and is_freemail(c.email):
            if policy == "exclude":
                kit.count("freemail_excluded")
                continue
            kit.count("freemail_low_confidence")
        kept.append(c)
    return kept


async def lusha_candidates(kit: Toolkit, company: store.Company) -> list[Candidate]:
    lusha = kit.lusha
    if lusha is None:
        raise RuntimeError("the stage did not ask for the Lusha client")
    titles = list(kit.ctx.settings.lusha_preferred_titles)
    domain = company.website_domain
    request = {"op": "find_contacts", "domain": domain, "name": None if domain else company.name, "titles": titles}

    async def run() -> tuple[Any, int]:
        result = await lusha.find_contacts(
            reference_id=str(company.company_id), company_name=company.name, domain=domain, titles=titles
        )
        people = [{"name": c.name, "title": c.title, "email": c.email} for c in result.contacts]
        # the ledger counts lookups: a lookup Lusha charged nothing for (a miss) is released
        return {"contacts": people, "credits": result.credits_charged}, min(result.credits_charged, LUSHA_LOOKUP_UNITS)

    # requests=0: the Lusha client takes a rate-limit slot for each request it really sends
    paid = await kit.paid(vendor="lusha", request=request, estimate=LUSHA_LOOKUP_UNITS, run=run, requests=0)
    if not paid.cached:
        kit.count("lusha_credits", int(paid.value.get("credits") or 0))
    return [
        Candidate(clean_email(p.get("email")), p.get("name"), p.get("title"), "lusha")
        for p in paid.value.get("contacts") or []
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    ]


async def contacts_for(kit: Toolkit, company: store.Company, *, suppress: Suppression) -> Outcome:
    ctx, cid, policy = kit.ctx, company.company_id, kit.ctx.settings.freemail_policy

    def save(candidates: list[Candidate]) -> Any:
        return ctx.in_global(lambda c: contacts_store.save_candidates(c, company_id=cid, candidates=candidates))

    snap = await ctx.in_global(lambda c: store.snapshot(c, company_id=cid, day=ctx.day))
    extraction = await ctx.in_global(lambda c: store.extraction(c, company_id=cid, day=ctx.day))
    found = admit(kit, gather(snap, extraction.facts if extraction else None), suppress=suppress, policy=policy)
    stored: list[str] = await save(found)
    known = await ctx.in_global(lambda c: contacts_store.company_emails(c, company_id=cid))
    emails = usable([*known, *stored], suppress=suppress, policy=policy)
    detail: dict[str, Any] = {"found": len(found), "stored_emails": len(stored), "usable_emails": len(set(emails))}
    if emails:
        return Outcome(cid, "done", detail=detail | {"source": "web"})
    from_lusha = admit(kit, await lusha_candidates(kit, company), suppress=suppress, policy=policy)
    lusha_emails = usable(await save(from_lusha), suppress=suppress, policy=policy)
    kit.count("lusha_hits" if lusha_emails else "lusha_misses")
    if lusha_emails:
        return Outcome(cid, "done", detail=detail | {"source": "lusha", "usable_emails": len(lusha_emails)})
    return Outcome(cid, "degraded", "no_contacts", detail=detail | {"lusha_people": len(from_lusha)})


async def contacts_stage(ctx: EnrichContext) -> StageReport:
    started = time.monotonic()
    ids = await pending_companies(ctx, STAGE)
    report = StageReport(STAGE, ctx.dry_run, len(ids))
    companies = await ctx.in_global(lambda c: store.companies(c, ids))
    suppress = await ctx.in_tenant(lambda c: load_suppression(c, tenant_id=ctx.tenant_id))
    async with open_toolkit(ctx, needs={"lusha"} if ids else set()) as kit:

        async def work(company_id: int) -> Outcome:
            return await contacts_for(kit, companies[company_id], suppress=suppress)

        report.outcomes = await run_companies(kit, stage=STAGE, company_ids=ids, work=work)
        return await finish_report(kit, report, started=started)


def run_contacts_stage(ctx: EnrichContext) -> StageReport:
    """Find contacts for the night's pending targets (the orchestrator's one call for this stage)."""
    return asyncio.run(contacts_stage(ctx))
