"""Lusha V3 client: decision-maker contacts of one company, with their work emails.

Lusha's V3 search-and-enrich finds contacts by identifier (id, email, LinkedIn URL, or name plus
company), not by job title. Finding "the CEO of acme.com" is therefore two documented calls:
`POST /v3/contacts/prospecting` filtered by company domain (or name) and job titles, which returns
ids, then `POST /v3/contacts/search-and-enrich` with those ids (each tagged with a
`clientReferenceId`) and `reveal: ["emails"]`. Only previews that say an email can be revealed are
enriched, so no credit is spent on contacts without one. The key goes in the `api_key` header.
`credits_charged` sums what Lusha's `billing.creditsCharged` reported for both calls.

`find_contacts_bulk` does the same for up to 100 companies (by domain) in one prospecting search,
paged 100 results at a time, and one search-and-enrich per 100 contacts (V3 takes up to 100 items
per request, docs.lusha.com/api-reference/overview). A free answer may leave `billing` out: it
then counts as the documented price of what it returned (nothing, for an empty answer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from leadgen_core.errors import VendorError, VendorResponseError
from leadgen_core.vendors.base import VendorClient
from leadgen_core.vendors.http import expect_list
from leadgen_core.vendors.limits import LUSHA_MAX_ITEMS

VENDOR = "lusha"
PAGE_SIZE = 10  # the smallest page V3 prospecting accepts
BULK_PAGE_SIZE = 100  # the largest page V3 prospecting accepts
MAX_BULK_PAGES = 20  # 100 companies x a handful of matching people each; a cap on paging
# Documented prices, used only when an answer leaves `billing` out: one search credit per contact
# returned, plus one per revealed email (docs.lusha.com, "Enrich Contacts": the reveal spends credits).
SEARCH_CREDITS, EMAIL_CREDITS = 1, 1
MAX_CONTACTS = 5
MAX_TITLES = 10
MAX_FIELD_CHARS = 200


@dataclass(frozen=True)
class Contact:
    name: str
    title: str | None
    email: str | None
    seniority: str | None = None
    lusha_id: str | None = None


@dataclass(frozen=True)
class LushaResult:
    contacts: tuple[Contact, ...]
    credits_charged: int


def _str(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return " ".join(value.split())[:MAX_FIELD_CHARS]


def _bare_domain(value: str) -> str:
    """The bare host of a domain or URL ("https://www.Acme.com/x" gives "acme.com"), as Lusha matches."""
    host = value.strip().lower().split("://")[-1].split("/")[0].split(":")[0]
    return host.removeprefix("www.")


def _billed(vendor_body: dict[str, Any], *, documented: int) -> int:
    """`billing.creditsCharged`; DOCUMENTED (the price of what was returned) when `billing` is absent."""
    billing = vendor_body.get("billing")
    if billing is None:
        return documented  # optional: a free answer may omit it
    charged = billing.get("creditsCharged") if isinstance(billing, dict) else None
    if not isinstance(charged, int) or isinstance(charged, bool) or charged < 0:
        raise VendorResponseError(VENDOR, "response without a valid billing.creditsCharged")
    return charged


def _enrich_price(results: list[Any]) -> int:
    found = [r for r in results if isinstance(r, dict) and not r.get("error")]
    return sum(SEARCH_CREDITS + (EMAIL_CREDITS if r.get("emails") else 0) for r in found)


@dataclass(frozen=True)
class CompanyRef:
    """One company of a bulk lookup: the caller's reference and its website domain."""

    reference_id: str
    domain: str


@dataclass(frozen=True)
class LushaBulkResult:
    contacts: dict[str, tuple[Contact, ...]]  # reference_id -> contacts (absent: none found)
    credits_charged: int


def _revealable(item: Any) -> bool:
    """A prospecting preview with an id whose email can be revealed (no credit on ones without)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise VendorResponseError(VENDOR, "prospecting: a result without an id")
    can_reveal = expect_list(VENDOR, item.get("canReveal"), what="prospecting canReveal")
    return any(isinstance(c, dict) and c.get("field") == "emails" for c in can_reveal)


def _work_email(emails: list[Any]) -> str | None:
    candidates = [e for e in emails if isinstance(e, dict) and isinstance(e.get("email"), str)]
    candidates.sort(key=lambda e: e.get("type") != "work")  # work addresses first, stable otherwise
    return _str(candidates[0]["email"].lower()) if candidates else None


@contextmanager
def _billed_so_far(credits: int) -> Iterator[None]:
    """A failure of a later request of a lookup carries the credits its earlier requests were billed,
    so the Spender records them (`VendorError.charged`) instead of releasing them with the rest."""
    try:
        yield
    except VendorError as exc:
        exc.charged += credits
        raise


class LushaClient(VendorClient):
    """Async Lusha V3 client (`api_key` header)."""

    VENDOR = VENDOR

    def _auth_headers(self) -> dict[str, str]:
        return {"api_key": self._key}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # prospecting and search-and-enrich both spend credits: never re-sent once they may have
        # reached Lusha unanswered (ChargeUncertain, recorded as an uncertain charge by the Spender)
        return await self._request("POST", path, json=body, billable=True)

    async def find_contacts(
        self, *, reference_id: str, company_name: str, domain: str | None, titles: Sequence[str]
    ) -> LushaResult:
        """Up to MAX_CONTACTS people at the company whose job title matches one of `titles`."""
        bare = _bare_domain(domain or "")
        company = {"domains": [bare]} if bare else {"names": [company_name.strip()[:MAX_FIELD_CHARS]]}
        job_titles = [t for t in (_str(t) for t in titles) if t][:MAX_TITLES]
        filters: dict[str, Any] = {"companies": {"include": company}}
        if job_titles:
            filters["contacts"] = {"include": {"jobTitles": job_titles}}
        found = await self._post(
            "/v3/contacts/prospecting", {"pagination": {"page": 0, "size": PAGE_SIZE}, "filters": filters}
        )
        found_results = expect_list(VENDOR, found.get("results"), what="prospecting results")
        credits = _billed(found, documented=SEARCH_CREDITS * len(found_results))
        previews: dict[str, dict[str, Any]] = {}
        for item in found_results[:PAGE_SIZE]:
            if _revealable(item):
                previews[f"{reference_id}:{len(previews)}"] = item
            if len(previews) == MAX_CONTACTS:
                break
        if not previews:
            return LushaResult((), credits)
        with _billed_so_far(credits):
            people, enrich_credits = await self._enrich(previews)
        return LushaResult(tuple(c for _, c in people), credits + enrich_credits)

    async def find_contacts_bulk(self, companies: Sequence[CompanyRef], *, titles: Sequence[str]) -> LushaBulkResult:
        """Up to MAX_CONTACTS matching people for each of up to 100 companies, in as few requests as Lusha allows."""
        if not 1 <= len(companies) <= LUSHA_MAX_ITEMS:
            raise ValueError(f"between 1 and {LUSHA_MAX_ITEMS} companies per bulk lookup")
        by_domain = {_bare_domain(c.domain): c.reference_id for c in companies if _bare_domain(c.domain)}
        job_titles = [t for t in (_str(t) for t in titles) if t][:MAX_TITLES]
        filters: dict[str, Any] = {"companies": {"include": {"domains": sorted(by_domain)}}}
        if job_titles:
            filters["contacts"] = {"include": {"jobTitles": job_titles}}
        credits = 0
        previews: dict[str, dict[str, Any]] = {}
        per_company: dict[str, int] = {}
        for page in range(MAX_BULK_PAGES):
            with _billed_so_far(credits):
                found = await self._post(
                    "/v3/contacts/prospecting",
                    {"pagination": {"page": page, "size": BULK_PAGE_SIZE}, "filters": filters},
                )
            results = expect_list(VENDOR, found.get("results"), what="prospecting results")[:BULK_PAGE_SIZE]
            credits += _billed(found, documented=SEARCH_CREDITS * len(results))
            for item in results:
                company = item.get("company") if isinstance(item, dict) else None
                domain = _bare_domain(str(company.get("domain") or "")) if isinstance(company, dict) else ""
                ref = by_domain.get(domain)
                if ref is None or not _revealable(item) or per_company.get(ref, 0) >= MAX_CONTACTS:
                    continue
                previews[f"{ref}:{per_company.get(ref, 0)}"] = item
                per_company[ref] = per_company.get(ref, 0) + 1
            pagination = found.get("pagination")
            total = pagination.get("total") if isinstance(pagination, dict) else None
            if len(results) < BULK_PAGE_SIZE or not isinstance(total, int) or (page + 1) * BULK_PAGE_SIZE >= total:
                break
        contacts: dict[str, list[Contact]] = {}
        refs = list(previews)
        for start in range(0, len(refs), LUSHA_MAX_ITEMS):
            chunk = {r: previews[r] for r in refs[start : start + LUSHA_MAX_ITEMS]}
            with _billed_so_far(credits):
                people, enrich_credits = await self._enrich(chunk)
            credits += enrich_credits
            for ref, contact in people:
                contacts.setdefault(ref.rsplit(":", 1)[0], []).append(contact)
        return LushaBulkResult({ref: tuple(found) for ref, found in contacts.items()}, credits)

    async def _enrich(self, previews: dict[str, dict[str, Any]]) -> tuple[list[tuple[str, Contact]], int]:
        """Reveal the emails of PREVIEWS (clientReferenceId -> preview): the contacts found and the credits."""
        enriched = await self._post(
            "/v3/contacts/search-and-enrich",
            {
                "contacts": [{"clientReferenceId": ref, "id": p["id"]} for ref, p in previews.items()],
                "reveal": ["emails"],
            },
        )
        results = expect_list(VENDOR, enriched.get("results"), what="search-and-enrich results")[: len(previews)]
        credits = _billed(enriched, documented=_enrich_price(results))
        people: list[tuple[str, Contact]] = []
        for item in results:
            if not isinstance(item, dict) or item.get("clientReferenceId") not in previews or item.get("error"):
                continue  # a per-item miss (NOT_FOUND, COMPLIANCE_RESTRICTED...) is not billed
            job_value = item.get("jobTitle")
            job: dict[str, Any] = job_value if isinstance(job_value, dict) else {}
            full = _str(item.get("fullName")) or _str(f"{item.get('firstName') or ''} {item.get('lastName') or ''}")
            if not full:
                continue
            contact = Contact(
                name=full,
                title=_str(job.get("title")),
                email=_work_email(expect_list(VENDOR, item.get("emails"), what="contact emails")),
                seniority=_str(job.get("seniority")),
                lusha_id=_str(item.get("id")),
            )
            people.append((str(item["clientReferenceId"]), contact))
        return people, credits
