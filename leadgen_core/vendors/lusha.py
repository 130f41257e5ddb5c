"""Lusha V3 client: decision-maker contacts of one company, with their work emails.

Lusha's V3 search-and-enrich finds contacts by identifier (id, email, LinkedIn URL, or name plus
company), not by job title. Finding "the CEO of acme.com" is therefore two documented calls:
`POST /v3/contacts/prospecting` filtered by company domain (or name) and job titles, which returns
ids, then `POST /v3/contacts/search-and-enrich` with those ids (each tagged with a
`clientReferenceId`) and `reveal: ["emails"]`. Only previews that say an email can be revealed are
enriched, so no credit is spent on contacts without one. The key goes in the `api_key` header.
`credits_charged` sums what Lusha's `billing.creditsCharged` reported for both calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from leadgen_core.errors import VendorResponseError
from leadgen_core.vendors.base import VendorClient
from leadgen_core.vendors.http import expect_list

VENDOR = "lusha"
PAGE_SIZE = 10  # the smallest page V3 prospecting accepts
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


def _billed(vendor_body: dict[str, Any]) -> int:
    billing = vendor_body.get("billing")
    charged = billing.get("creditsCharged") if isinstance(billing, dict) else None
    if not isinstance(charged, int) or isinstance(charged, bool) or charged < 0:
        raise VendorResponseError(VENDOR, "response without a valid billing.creditsCharged")
    return charged


def _work_email(emails: list[Any]) -> str | None:
    candidates = [e for e in emails if isinstance(e, dict) and isinstance(e.get("email"), str)]
    candidates.sort(key=lambda e: e.get("type") != "work")  # work addresses first, stable otherwise
    return _str(candidates[0]["email"].lower()) if candidates else None


class LushaClient(VendorClient):
    """Async Lusha V3 client (`api_key` header)."""

    VENDOR = VENDOR

    def _auth_headers(self) -> dict[str, str]:
        return {"api_key": self._key}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, json=body)

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
        credits = _billed(found)
        previews: dict[str, dict[str, Any]] = {}
        for item in expect_list(VENDOR, found.get("results"), what="prospecting results")[:PAGE_SIZE]:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise VendorResponseError(VENDOR, "prospecting: a result without an id")
            can_reveal = expect_list(VENDOR, item.get("canReveal"), what="prospecting canReveal")
            if any(isinstance(c, dict) and c.get("field") == "emails" for c in can_reveal):
                previews[f"{reference_id}:{len(previews)}"] = item
            if len(previews) == MAX_CONTACTS:
                break
        if not previews:
            return LushaResult((), credits)
        enriched = await self._post(
            "/v3/contacts/search-and-enrich",
            {
                "contacts": [{"clientReferenceId": ref, "id": p["id"]} for ref, p in previews.items()],
                "reveal": ["emails"],
            },
        )
        credits += _billed(enriched)
        contacts: list[Contact] = []
        for item in expect_list(VENDOR, enriched.get("results"), what="search-and-enrich results")[: len(previews)]:
            if not isinstance(item, dict) or item.get("clientReferenceId") not in previews or item.get("error"):
                continue  # a per-item miss (NOT_FOUND, COMPLIANCE_RESTRICTED...) is not billed
            job_value = item.get("jobTitle")
            job: dict[str, Any] = job_value if isinstance(job_value, dict) else {}
            full = _str(item.get("fullName")) or _str(f"{item.get('firstName') or ''} {item.get('lastName') or ''}")
            if not full:
                continue
            contacts.append(
                Contact(
                    name=full,
                    title=_str(job.get("title")),
                    email=_work_email(expect_list(VENDOR, item.get("emails"), what="contact emails")),
                    seniority=_str(job.get("seniority")),
                    lusha_id=_str(item.get("id")),
                )
            )
        return LushaResult(tuple(contacts), credits)
