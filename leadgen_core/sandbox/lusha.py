"""A Lusha V3 simulator: contact prospecting by filters and search-and-enrich by identifier.

Shapes follow Lusha's V3 OpenAPI: the key travels in the `api_key` header; errors are
`{"statusCode", "message", "errors"?}` (400 validation, 401 bad key, 402 out of credits, 429);
successful answers carry `requestId`, `results[]` and `billing{creditsCharged, resultsReturned}`.

* `POST /v3/contacts/prospecting` - `filters.contacts.include.jobTitles` and
  `filters.companies.include.domains|names` -> non-PII previews with stable `id`s; charged one
  `api_search` credit per result returned (an empty result costs nothing).
* `POST /v3/contacts/search-and-enrich` - `contacts[]` items (each with `clientReferenceId`
  and one of `id`, `email`, `linkedinUrl`, or `firstName`+`lastName`+`companyName|companyDomain`)
  -> full profiles echoing `clientReferenceId`; one search credit per found contact plus one per
  revealed email (phones cost more); a miss is `error.code = NOT_FOUND` and costs nothing.

Who works where is derived from the company domain with `stable_fraction`, so answers are stable.

In the `realistic` profile the plan's quotas apply (`LUSHA_PLAN`: per-second, per-minute, hourly
and daily requests, see `leadgen_core.vendors.limits`, scaled by the profile's time scale), every
answer carries the documented `x-rate-limit-*` / `x-*-requests-left` / `x-*-usage` headers, and a
request past a quota gets the documented 429 whose message names the window. Lusha documents no
`Retry-After`; the simulator sends one anyway (the seconds until the window resets, which the
hourly message also states) so a client that honours it can be tested.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from leadgen_core.sandbox.base import FaultConfig, SimRequest, SimResponse, SimServer
from leadgen_core.sandbox.naming import sandbox_domain, stable_fraction
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.sandbox.quota import Quota, Refusal, Window
from leadgen_core.vendors.limits import (
    LUSHA_DEFAULT_PLAN,
    LUSHA_MAX_ITEMS,
    LUSHA_PER_SECOND,
    LUSHA_PLANS,
    LushaPlan,
    LushaQuota,
)

MISS_RATE = 0.2
NO_EMAIL_RATE = 0.15
MAX_PEOPLE = 4
MAX_ITEMS = LUSHA_MAX_ITEMS
PAGE_SIZE_MIN, PAGE_SIZE_MAX = 10, 100
SEARCH_CREDITS, EMAIL_CREDITS, PHONE_CREDITS = 1, 1, 5
FIRST_NAMES = ("Wei Ling", "Arjun", "Siti", "Marcus", "Mei", "Daniel", "Farah", "Kenneth", "Priya", "Jun Jie")
LAST_NAMES = ("Tan", "Lim", "Nair", "Wong", "Rahman", "Chua", "Goh", "Menon", "Lee", "Koh")
# the first title of a company is always a decision maker, so most hits have a useful contact
LEAD_TITLES = (("Founder & CEO", "Founder"), ("Managing Director", "C-Level"), ("Director", "Director"))
OTHER_TITLES = (
    ("Head of Sales", "Director"),
    ("Sales Director", "Director"),
    ("Operations Manager", "Manager"),
    ("Chief Technology Officer", "C-Level"),
    ("Marketing Executive", "Non-Manager"),
    ("Finance Manager", "Manager"),
)


@dataclass(frozen=True)
class Person:
    id: str
    first: str
    last: str
    title: str
    seniority: str
    domain: str
    email: str | None
    phone: str

    @property
    def full_name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def linkedin(self) -> str:
        return f"https://www.linkedin.com/in/{self.first}-{self.last}-{self.id[-6:]}".lower().replace(" ", "-")


def normalise_domain(value: str) -> str:
    value = value.strip().lower().split("://")[-1].split("/")[0].split(":")[0]
    return value.removeprefix("www.")


def _person_id(domain: str, index: int) -> str:
    raw = base64.urlsafe_b64encode(f"{domain}|{index}".encode()).decode().rstrip("=")
    return f"v1.{raw}"


def _decode_id(value: str) -> tuple[str, int] | None:
    if not value.startswith("v1."):
        return None
    raw = value[3:] + "=" * (-len(value[3:]) % 4)
    try:
        domain, _, index = base64.urlsafe_b64decode(raw).decode().rpartition("|")
        return domain, int(index)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def people_at(domain: str) -> list[Person]:
    """The deterministic staff list of a company domain (empty for ~20% of domains)."""
    domain = normalise_domain(domain)
    if not domain or stable_fraction("lusha-miss", domain) < MISS_RATE:
        return []
    count = 1 + int(stable_fraction("lusha-count", domain) * MAX_PEOPLE)
    people = []
    for i in range(count):
        first = FIRST_NAMES[int(stable_fraction("first", domain, str(i)) * len(FIRST_NAMES))]
        last = LAST_NAMES[int(stable_fraction("last", domain, str(i)) * len(LAST_NAMES))]
        pool = LEAD_TITLES if i == 0 else OTHER_TITLES
        title, seniority = pool[int(stable_fraction("title", domain, str(i)) * len(pool))]
        has_email = stable_fraction("lusha-email", domain, str(i)) >= NO_EMAIL_RATE
        local = f"{first}.{last}".lower().replace(" ", "")
        phone = f"+65 6{int(stable_fraction('phone', domain, str(i)) * 10_000_000):07d}"
        email = f"{local}@{domain}" if has_email else None
        people.append(Person(_person_id(domain, i), first, last, title, seniority, domain, email, phone))
    return people


def _words(text: str) -> frozenset[str]:
    """Title words; a filter matches a title when all its words occur (so "cto" misses "Director")."""
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def _include(filters: dict[str, Any], key: str) -> dict[str, Any]:
    """`filters[key].include`, or {} when any level is missing or not an object."""
    section = filters.get(key)
    include = section.get("include") if isinstance(section, dict) else None
    return include if isinstance(include, dict) else {}


def _error(status: int, message: str, errors: list[str] | None = None) -> SimResponse:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if errors:
        body["errors"] = errors
    return SimResponse(status, body)


def plan_windows(plan: LushaQuota, profile: SandboxProfile) -> list[Window]:
    """The plan's request windows, limits raised by the profile's time scale."""

    def scaled(n: int) -> int:
        return max(1, int(profile.rate(n)))

    windows = [Window("second", scaled(LUSHA_PER_SECOND), 1.0), Window("minute", scaled(plan.per_minute), 60.0)]
    if plan.per_hour is not None:
        windows.append(Window("hour", scaled(plan.per_hour), 3_600.0))
    windows.append(Window("day", scaled(plan.per_day), 86_400.0))
    return windows


def quota_refusal(refused: Refusal, plan: LushaQuota) -> SimResponse:
    """Lusha's 429 for the window that refused (docs.lusha.com/apis/v2/openapi/section/error-codes)."""
    w, wait = refused.window, max(1, int(refused.retry_after_s + 0.999))
    if w.name == "day":
        message = f"Daily API quota limit exceeded. Limit {w.limit} calls per day"
    elif w.name == "hour":
        message = f"Hourly API rate limit exceeded. Limit: {w.limit} calls per hour. Reset in {wait} seconds"
    else:  # the per-second/per-minute burst: docs.lusha.com/rate-limiting.md ("429 Too Many Requests")
        message = f"Too many requests. Limit: {w.limit} calls per {w.name}. Please wait before retrying"
    resp = _error(429, message)
    resp.headers["Retry-After"] = str(wait)
    return resp


class LushaSim(SimServer):
    """Lusha V3 contact prospecting and search-and-enrich over loopback, with a credit balance."""

    name = "lusha"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-lusha-key",
        faults: FaultConfig | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        credits: int = 100_000,
        plan: LushaPlan | LushaQuota = LUSHA_DEFAULT_PLAN,
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.api_key = api_key
        self.credits = credits
        self.plan = plan if isinstance(plan, LushaQuota) else LUSHA_PLANS[plan]
        self.quota = Quota(plan_windows(self.plan, profile)) if profile.realistic else None
        self.route("POST", "/v3/contacts/prospecting", self._prospecting)
        self.route("POST", "/v3/contacts/search-and-enrich", self._search_and_enrich)

    def _answer(self, req: SimRequest) -> SimResponse:
        if self.quota is None:
            return super()._answer(req)
        # a tenant's own key has its own quotas (same plan): Lusha limits each account alone
        quota = self.per_account(
            req.header("api_key"), self.quota, lambda: Quota(plan_windows(self.plan, self.profile))
        )
        refused = quota.take()
        resp = quota_refusal(refused, self.plan) if refused is not None else super()._answer(req)
        resp.headers.update(self._quota_headers(quota))
        return resp

    def _quota_headers(self, quota: Quota) -> dict[str, str]:
        """The documented x-rate-limit-* headers (docs.lusha.com/apis/v2/openapi/section/rate-limiting)."""
        headers: dict[str, str] = {}
        for window in quota.windows:
            if window.name == "second":
                continue
            used = quota.used(window.name)
            label = {"minute": "minute", "hour": "hourly", "day": "daily"}[window.name]
            headers[f"x-rate-limit-{label}"] = str(window.limit)
            headers[f"x-{label}-requests-left"] = str(max(0, window.limit - used))
            headers[f"x-{label}-usage"] = str(used)
        return headers

    def rate_limit_body(self) -> dict[str, Any]:
        return {"statusCode": 429, "message": "Too many requests. Please wait before making another request."}

    def _preflight(self, req: SimRequest) -> dict[str, Any] | SimResponse:
        if not self.known_key(req.header("api_key"), self.api_key):
            return _error(401, "Invalid API key")
        try:
            body = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "Invalid request parameters", ["body must be valid JSON"])
        if not isinstance(body, dict):
            return _error(400, "Invalid request parameters", ["body must be an object"])
        return body

    def _charge(self, credits: int) -> bool:
        with self._lock:
            if credits > self.credits:
                return False
            self.credits -= credits
            return True

    @staticmethod
    def _request_id(body: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    @staticmethod
    def _preview(p: Person) -> dict[str, Any]:
        has = ["firstName", "lastName", "jobTitle", "company", "phones"] + (["emails"] if p.email else [])
        can_reveal = ([{"field": "emails", "credits": EMAIL_CREDITS}] if p.email else []) + [
            {"field": "phones", "credits": PHONE_CREDITS}
        ]
        return {
            "id": p.id,
            "firstName": p.first,
            "lastName": p.last,
            "jobTitle": {"title": p.title, "departments": [], "seniority": p.seniority},
            "company": {"id": p.domain, "name": p.domain.split(".")[0].replace("-", " ").title(), "domain": p.domain},
            "has": has,
            "canReveal": can_reveal,
        }

    # --- /v3/contacts/prospecting ----------------------------------------------------------
    def _prospecting(self, req: SimRequest) -> SimResponse:
        body = self._preflight(req)
        if isinstance(body, SimResponse):
            return body
        filters = body.get("filters")
        if not isinstance(filters, dict):
            return _error(400, "Invalid request parameters", ["filters must be an object"])
        pagination = body.get("pagination") or {"page": 0, "size": 25}
        size = pagination.get("size") if isinstance(pagination, dict) else None
        if not isinstance(size, int) or not PAGE_SIZE_MIN <= size <= PAGE_SIZE_MAX:
            return _error(400, "Invalid request parameters", [f"pagination.size: {PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}"])
        page_no = pagination.get("page", 0) if isinstance(pagination, dict) else 0
        if not isinstance(page_no, int) or isinstance(page_no, bool) or page_no < 0:
            return _error(400, "Invalid request parameters", ["pagination.page must be a non-negative integer"])
        companies, contacts = _include(filters, "companies"), _include(filters, "contacts")
        domains = [normalise_domain(d) for d in companies.get("domains") or [] if isinstance(d, str)]
        domains += [sandbox_domain(n) for n in companies.get("names") or [] if isinstance(n, str)]
        titles = [_words(t) for t in contacts.get("jobTitles") or [] if isinstance(t, str) and _words(t)]
        if not domains:
            return _error(400, "Invalid request parameters", ["filters.companies.include needs domains or names"])
        if len(domains) > MAX_ITEMS:
            return _error(400, "Invalid request parameters", [f"at most {MAX_ITEMS} companies per request"])
        matches = [p for d in domains for p in people_at(d) if not titles or any(t <= _words(p.title) for t in titles)]
        page = matches[page_no * size : (page_no + 1) * size]
        credits = SEARCH_CREDITS * len(page)
        if not self._charge(credits):
            return _error(402, "Insufficient credits for this operation")
        payload = {
            "requestId": self._request_id(body),
            "results": [self._preview(p) for p in page],
            "pagination": {"page": page_no, "size": size, "total": len(matches)},
            "billing": {"creditsCharged": credits, "resultsReturned": len(page)},
        }
        return SimResponse(200, payload, billable_units=credits)

    # --- /v3/contacts/search-and-enrich ----------------------------------------------------
    def _search_and_enrich(self, req: SimRequest) -> SimResponse:
        body = self._preflight(req)
        if isinstance(body, SimResponse):
            return body
        items = body.get("contacts")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            return _error(400, "Invalid request parameters", [f"contacts must be an array of 1-{MAX_ITEMS} items"])
        reveal = body.get("reveal") or ["emails", "phones"]
        if not isinstance(reveal, list) or not set(reveal) <= {"emails", "phones"}:
            return _error(400, "Invalid request parameters", ["reveal items must be one of: emails, phones"])
        problems = [f"contacts[{i}] has no identifier" for i, item in enumerate(items) if not self._identifiable(item)]
        if problems:
            return _error(400, "Invalid request parameters", problems)
        results, credits, found = [], 0, 0
        for item in items:
            ref = item.get("clientReferenceId")
            person = self._resolve(item)
            if person is None:
                miss = {"code": "NOT_FOUND", "message": "Contact not found"}
                results.append({"clientReferenceId": ref, "error": miss})
                continue
            found += 1
            credits += SEARCH_CREDITS
            emails, phones = [], []
            if "emails" in reveal and person.email:
                emails = [{"email": person.email, "type": "work", "confidence": "A", "updateDate": "2026-01-15"}]
                credits += EMAIL_CREDITS
            if "phones" in reveal:
                phones = [{"number": person.phone, "type": "direct", "doNotCall": False, "updateDate": "2026-01-15"}]
                credits += PHONE_CREDITS
            profile = self._preview(person) | {
                "clientReferenceId": ref,
                "fullName": person.full_name,
                "emails": emails,
                "phones": phones,
                "socialLinks": {"linkedin": person.linkedin},
                "updateDate": "2026-01-15",
            }
            for key in ("has", "canReveal"):
                profile.pop(key)
            results.append(profile)
        if not self._charge(credits):
            return _error(402, "Insufficient credits for this operation")
        payload = {
            "requestId": self._request_id(body),
            "results": results,
            "billing": {"creditsCharged": credits, "resultsReturned": found},
        }
        return SimResponse(200, payload, billable_units=credits)

    @staticmethod
    def _identifiable(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        company = item.get("companyName") or item.get("companyDomain")
        by_name = item.get("firstName") and item.get("lastName") and company
        return bool(item.get("id") or item.get("email") or item.get("linkedinUrl") or by_name)

    @staticmethod
    def _resolve(item: dict[str, Any]) -> Person | None:
        if item.get("id"):
            decoded = _decode_id(str(item["id"]))
            if decoded is None:
                return None
            staff = people_at(decoded[0])
            return staff[decoded[1]] if 0 <= decoded[1] < len(staff) else None
        if item.get("email"):
            email = str(item["email"]).strip().lower()
            return next((p for p in people_at(email.rpartition("@")[2]) if p.email == email), None)
        if item.get("linkedinUrl"):
            return None  # the sandbox has no LinkedIn index; real misses look the same
        domain = normalise_domain(str(item.get("companyDomain") or "")) or sandbox_domain(str(item["companyName"]))
        first, last = str(item["firstName"]).strip().lower(), str(item["lastName"]).strip().lower()
        return next((p for p in people_at(domain) if (p.first.lower(), p.last.lower()) == (first, last)), None)
