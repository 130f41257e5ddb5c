"""Stage `contacts`: people and addresses from the crawl and the extraction, Lusha when none.

Per company: the crawl's addresses and the extraction's addresses and key people become contacts
(an address whose local part spells a named person's name gets that person's name and title),
deduplicated globally by lower(email), with a `lead_emails` row each. Addresses the tenant has
suppressed (the address or its domain) are never stored by this tenant's run and never count as
usable. Free-mail addresses are dropped under FREEMAIL_POLICY=exclude and kept (scoring caps
their tier) under low_confidence.

Only when the company has no usable address at all is Lusha asked. The stage first finds every
company's web contacts, then asks Lusha about all the companies left without an address at once:
up to 100 companies (by domain) per bulk lookup, as V3 allows (companies known only by name are
looked up one by one: an answer names the company's domain, which a name cannot be matched to).
Each company's answer is cached on its own, so another tenant asking about it tomorrow is free.
The budget ledger counts Lusha credits as Lusha bills them (`billing.creditsCharged`), capped by
LUSHA_MAX_CREDITS: LUSHA_CREDITS_ESTIMATE per company is reserved, then settled to the bill.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from leadgen_core import event_loop
from leadgen_core.enrich import contacts_store, store
from leadgen_core.enrich.contacts_store import Candidate
from leadgen_core.enrich.context import EnrichContext, Toolkit, open_toolkit
from leadgen_core.enrich.runner import StageReport, finish_report, pending_companies, run_companies
from leadgen_core.errors import BudgetExhausted
from leadgen_core.night.stage_status import Outcome
from leadgen_core.person_fields import clean_person_name, clean_title
from leadgen_core.scoring.freemail import is_freemail
from leadgen_core.suppression import Suppression, load_suppression
from leadgen_core.vendors.limits import LUSHA_MAX_ITEMS
from leadgen_core.vendors.lusha import CompanyRef
from leadgen_core.vendors.openai_extract import EMAIL_RE

STAGE = "contacts"
# Credits reserved per company before a lookup, settled to `billing.creditsCharged` after it: a
# search credit per matching person shown plus a search and an email credit per revealed contact
# (up to 5) is 2-15; most small companies list one to three people.
LUSHA_CREDITS_ESTIMATE = 6
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
        # shaped again here: extractions stored before grounding existed are read too
        name = clean_person_name(p.get("name")) if isinstance(p, dict) else None
        if name is not None:
            people.append((name, clean_title(p.get("title"))))
    found: dict[str, Candidate] = {}
    sources = [("crawl", snap.emails if snap else ()), ("extraction", (facts or {}).get("emails") or [])]
    for source, emails in sources:
        for raw in emails:
            email = clean_email(raw)
            if email and email not in found:
                person = _person_for(email, people)
                name, title = person if person else (None, None)
                url = snap.url if snap is not None and source == "crawl" else None  # the evidence
                found[email] = Candidate(email, name, title, source, evidence_url=url)
    named = {c.name for c in found.values() if c.name}
    rest = [Candidate(None, name, title, "extraction") for name, title in people if name not in named]
    return [*found.values(), *rest]


def usable(emails: Iterable[str | None], *, suppress: Suppression, policy: str) -> list[str]:
    return [
        e for e in emails if e and not suppress.blocks(e) and not (policy == "exclude" and is_freemail(e))
    ]  # fmt: skip


def admit(counts: Counter[str], candidates: list[Candidate], *, suppress: Suppression, policy: str) -> list[Candidate]:
    """The candidates this tenant may store: suppressed and (by policy) free-mail addresses dropped
    (each counted in COUNTS; a plain Counter, so this can run in a database step's thread)."""
    kept: list[Candidate] = []
    for c in candidates:
        if c.email is not None and suppress.blocks(c.email):
            counts["suppressed_skipped"] += 1
            continue
        if c.email is not None and is_freemail(c.email):
            if policy == "exclude":
                counts["freemail_excluded"] += 1
                continue
            counts["freemail_low_confidence"] += 1
        kept.append(c)
    return kept


def _count_all(kit: Toolkit, counts: Counter[str]) -> None:
    for name, n in counts.items():
        kit.count(name, n)


def lusha_request(company: store.Company, titles: list[str]) -> dict[str, Any]:
    """One company's lookup as cached: the same key whether it was asked alone or in bulk."""
    domain = company.website_domain
    return {"op": "find_contacts", "domain": domain, "name": None if domain else company.name, "titles": titles}


def _candidates(value: Any) -> list[Candidate]:
    return [
        Candidate(clean_email(p.get("email")), p.get("name"), p.get("title"), "lusha")
        for p in (value or {}).get("contacts") or []
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    ]


def _people(contacts: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"name": c.name, "title": c.title, "email": c.email} for c in contacts]


LushaAnswer = list[Candidate] | BaseException


class LushaLookups:
    """Lusha for the companies left without an address: cache, then bulk by domain, then one by one."""

    def __init__(self, kit: Toolkit) -> None:
        self.kit = kit
        self.titles = list(kit.ctx.settings.lusha_preferred_titles)
        self.answers: dict[int, LushaAnswer] = {}

    async def run(self, companies: list[store.Company]) -> dict[int, LushaAnswer]:
        spender = self.kit.spender
        uncached: list[store.Company] = []
        for company in companies:
            hit = await spender.cached("lusha", lusha_request(company, self.titles))
            if hit is None:
                uncached.append(company)
            else:
                self.answers[company.company_id] = _candidates(hit)
        by_domain = [c for c in uncached if c.website_domain]
        chunks = [by_domain[i : i + LUSHA_MAX_ITEMS] for i in range(0, len(by_domain), LUSHA_MAX_ITEMS)]
        semaphore = asyncio.Semaphore(self.kit.ctx.workers)

        async def alone(company: store.Company) -> None:
            async with semaphore:
                await self._one(company)

        await asyncio.gather(*(self._bulk(chunk) for chunk in chunks))
        await asyncio.gather(*(alone(c) for c in uncached if not c.website_domain))
        return self.answers

    async def _bulk(self, chunk: list[store.Company]) -> None:
        """One bulk lookup; a chunk the cap refuses is halved until it fits."""
        pending = [chunk]
        while pending:
            part = pending.pop(0)
            try:
                await self._send(part)
            except BudgetExhausted as exc:
                if len(part) == 1:
                    self.answers[part[0].company_id] = exc
                else:
                    pending[:0] = [part[: len(part) // 2], part[len(part) // 2 :]]
            except Exception as exc:  # noqa: BLE001 - each company of the chunk records it
                self.answers.update(dict.fromkeys((c.company_id for c in part), exc))

    async def _send(self, part: list[store.Company]) -> None:
        lusha = self.kit.lusha
        if lusha is None:
            raise RuntimeError("the stage did not ask for the Lusha client")
        refs = [CompanyRef(str(c.company_id), c.website_domain or "") for c in part]

        async def run() -> tuple[Any, int]:
            found = await lusha.find_contacts_bulk(refs, titles=self.titles)
            people = {ref: _people(contacts) for ref, contacts in found.contacts.items()}
            return {"contacts": people, "credits": found.credits_charged}, found.credits_charged

        request = {"op": "find_contacts_bulk", "domains": [r.domain for r in refs], "titles": self.titles}

        # requests=0: the client takes a rate-limit slot for each request it really sends
        def per_company(conn: psycopg.Connection, value: Any) -> None:
            for c in part:
                self.kit.spender.cache_in(conn, "lusha", lusha_request(c, self.titles), self._company_answer(value, c))

        paid = await self.kit.paid(
            vendor="lusha", request=request, estimate=LUSHA_CREDITS_ESTIMATE * len(part), run=run, requests=0,
            cacheable=False,  # each company's answer is cached on its own, with the settlement
            record=per_company,
        )  # fmt: skip
        self.kit.count("lusha_credits", int(paid.value.get("credits") or 0))
        self.kit.count("lusha_bulk_requests")
        for company in part:
            self.answers[company.company_id] = _candidates(self._company_answer(paid.value, company))

    @staticmethod
    def _company_answer(value: Any, company: store.Company) -> dict[str, Any]:
        """One company's share of a bulk answer, as its own cache row holds it (credits paid in bulk)."""
        return {"contacts": value["contacts"].get(str(company.company_id), []), "credits": 0}

    async def _one(self, company: store.Company) -> None:
        lusha = self.kit.lusha
        if lusha is None:
            raise RuntimeError("the stage did not ask for the Lusha client")

        async def run() -> tuple[Any, int]:
            result = await lusha.find_contacts(
                reference_id=str(company.company_id), company_name=company.name, domain=None, titles=self.titles
            )
            return {"contacts": _people(result.contacts), "credits": result.credits_charged}, result.credits_charged

        try:
            paid = await self.kit.paid(
                vendor="lusha", request=lusha_request(company, self.titles), estimate=LUSHA_CREDITS_ESTIMATE,
                run=run, requests=0,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the company's work re-raises it
            self.answers[company.company_id] = exc
            return
        if not paid.cached:
            self.kit.count("lusha_credits", int(paid.value.get("credits") or 0))
        self.answers[company.company_id] = _candidates(paid.value)


class WebContacts:
    """What the crawl and the extraction found for one company, before Lusha is asked."""

    def __init__(self, detail: dict[str, Any], emails: list[str]) -> None:
        self.detail = detail
        self.emails = emails


async def web_contacts(kit: Toolkit, company: store.Company, *, suppress: Suppression) -> WebContacts:
    ctx, cid, policy = kit.ctx, company.company_id, kit.ctx.settings.freemail_policy

    counts: Counter[str] = Counter()

    def step(c: psycopg.Connection) -> tuple[list[Candidate], list[str], list[str]]:
        # one transaction: the crawl's and the extraction's reads, the candidates' write, the read after it
        extraction, snap = store.inputs(c, company_id=cid, day=ctx.day)
        found = admit(counts, gather(snap, extraction.facts if extraction else None), suppress=suppress, policy=policy)
        stored = contacts_store.save_candidates(c, company_id=cid, candidates=found, own_domain=company.website_domain)
        return found, stored, contacts_store.company_emails(c, company_id=cid)

    found, stored, known = await ctx.in_global(step)
    _count_all(kit, counts)
    emails = usable([*known, *stored], suppress=suppress, policy=policy)
    detail: dict[str, Any] = {"found": len(found), "stored_emails": len(stored), "usable_emails": len(set(emails))}
    return WebContacts(detail, emails)


async def contacts_for(
    kit: Toolkit, company: store.Company, *, web: WebContacts | BaseException, lusha: LushaAnswer | None,
    suppress: Suppression,
) -> Outcome:  # fmt: skip
    ctx, cid, policy = kit.ctx, company.company_id, kit.ctx.settings.freemail_policy
    if isinstance(web, BaseException):
        raise web
    if web.emails:
        return Outcome(cid, "done", detail=web.detail | {"source": "web"})
    if lusha is None:
        raise RuntimeError(f"company {cid} has no address and was not looked up")
    if isinstance(lusha, BaseException):
        raise lusha
    counts: Counter[str] = Counter()
    from_lusha = admit(counts, lusha, suppress=suppress, policy=policy)
    _count_all(kit, counts)
    # bought for this company: kept for it even when another company showed the address first
    saved = await ctx.in_global(
        lambda c: contacts_store.save_candidates(
            c, company_id=cid, candidates=from_lusha, own_domain=company.website_domain
        )
    )
    lusha_emails = usable(saved, suppress=suppress, policy=policy)
    kit.count("lusha_hits" if lusha_emails else "lusha_misses")
    if lusha_emails:
        return Outcome(cid, "done", detail=web.detail | {"source": "lusha", "usable_emails": len(lusha_emails)})
    return Outcome(cid, "degraded", "no_contacts", detail=web.detail | {"lusha_people": len(from_lusha)})


async def contacts_stage(ctx: EnrichContext) -> StageReport:
    started = time.monotonic()
    ids = await pending_companies(ctx, STAGE)
    report = StageReport(STAGE, ctx.dry_run, len(ids))
    companies = await ctx.in_global(lambda c: store.companies(c, ids))
    suppress = await ctx.in_tenant(lambda c: load_suppression(c, tenant_id=ctx.tenant_id))
    async with open_toolkit(ctx, needs={"lusha"} if ids else set()) as kit:
        semaphore = asyncio.Semaphore(ctx.workers)

        async def web_of(company_id: int) -> WebContacts | BaseException:
            async with semaphore:
                try:
                    return await web_contacts(kit, companies[company_id], suppress=suppress)
                except Exception as exc:  # noqa: BLE001 - recorded as the company's outcome below
                    return exc

        webs = dict(zip(ids, await asyncio.gather(*(web_of(c) for c in ids)), strict=True))
        need = [companies[c] for c, web in webs.items() if isinstance(web, WebContacts) and not web.emails]
        answers = await LushaLookups(kit).run(need) if need else {}

        async def work(company_id: int) -> Outcome:
            return await contacts_for(
                kit, companies[company_id], web=webs[company_id], lusha=answers.get(company_id), suppress=suppress
            )

        report.outcomes = await run_companies(kit, stage=STAGE, company_ids=ids, work=work)
        return await finish_report(kit, report, started=started)


def run_contacts_stage(ctx: EnrichContext) -> StageReport:
    """Find contacts for the night's pending targets (the orchestrator's one call for this stage)."""
    return event_loop.run(contacts_stage(ctx))
