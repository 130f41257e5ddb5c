"""A Tavily simulator: `POST /search` and `POST /extract` with Bearer auth.

Shapes follow Tavily's REST docs: errors are `{"detail": {"error": "..."}}` (401 bad key, 400 bad
body), search answers `{query, results[], response_time, usage?, request_id}`, extract answers
`{results[], failed_results[], response_time, usage?, request_id}`. Credits: basic/fast search 1,
advanced 2; extract 1 (basic) or 2 (advanced) per 5 successful URLs, nothing for failures.

A query naming a company ("<name> Singapore official website") finds the company's sandbox site
for ~85% of names (decided by `stable_fraction`, so every run agrees with the web simulator); the
rest get directory listings on the reserved `.example` TLD that never resolve.

In the `realistic` profile the key's documented requests per minute apply (`TAVILY_KEY_KIND`:
production 1,000/min, development 100/min, see `leadgen_core.vendors.limits`, raised by the time
scale); past them a request gets 429 with the error body and the seconds to the next window in
`Retry-After`.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any
from urllib.parse import urlsplit

from leadgen_core.sandbox.base import FaultConfig, SimRequest, SimResponse, SimServer, bearer_token
from leadgen_core.sandbox.naming import company_slug, is_sandbox_host, sandbox_domain, stable_fraction
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.sandbox.quota import Quota, Window
from leadgen_core.vendors.limits import TAVILY_DEFAULT_KEY_KIND, TAVILY_RPM, tavily_key_kind

HIT_RATE = 0.85
EMAIL_RATE = 0.6
MAX_QUERY_CHARS = 400
MAX_RESULTS = 20
MAX_EXTRACT_URLS = 20
URLS_PER_EXTRACT_CREDIT = 5
DEPTH_CREDITS = {"basic": 1, "fast": 1, "ultra-fast": 1, "advanced": 2}
EXTRACT_DEPTH_CREDITS = {"basic": 1, "advanced": 2}
# only trailing words are stripped: "Singapore" can also be part of a registered name
QUERY_SUFFIX_WORDS = frozenset({"singapore", "sg", "official", "website", "homepage", "site", "web", "home", "page"})
INDUSTRIES = (
    "precision engineering",
    "logistics and freight forwarding",
    "software development",
    "food manufacturing",
    "interior design and fit-out",
    "wholesale trade of electronic components",
    "digital marketing",
    "industrial automation",
)
DIRECTORIES = ("sgbizdirectory.example", "companieshub.example", "yellowlist.example", "bizfile-mirror.example")


def _error(status: int, message: str) -> SimResponse:
    return SimResponse(status, {"detail": {"error": message}})


def company_from_query(query: str) -> str:
    """The company name inside a "<name> Singapore official website" style query."""
    words = query.replace('"', " ").split()
    while words and words[-1].lower().strip(".,") in QUERY_SUFFIX_WORDS:
        words.pop()
    return " ".join(words)


def industry_of(slug: str) -> str:
    return INDUSTRIES[int(stable_fraction("industry", slug) * len(INDUSTRIES))]


def site_paragraph(name: str, domain: str) -> str:
    """Plausible homepage text for a sandbox company (sometimes with a contact address)."""
    slug = domain.split(".", 1)[0]
    years = 3 + int(stable_fraction("founded", slug) * 30)
    staff = 5 + int(stable_fraction("staff", slug) * 200)
    text = (
        f"{name} is a Singapore-based company specialising in {industry_of(slug)}. "
        f"For over {years} years our team of about {staff} employees has served clients across Southeast Asia. "
        "We focus on reliable delivery, transparent pricing and long-term partnerships."
    )
    if stable_fraction("email", slug) < EMAIL_RATE:
        text += f" Contact us at info@{domain} for enquiries."
    return text


class TavilySim(SimServer):
    """Tavily Search and Extract over loopback."""

    name = "tavily"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-tavily-key",
        faults: FaultConfig | None = None,
        web_port: int | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        key_kind: str = TAVILY_DEFAULT_KEY_KIND,
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.api_key = api_key
        self.web_port = web_port
        self.key_kind = tavily_key_kind(key_kind)
        self.rpm = max(1, int(profile.rate(TAVILY_RPM[self.key_kind])))
        self.quota = Quota([Window("minute", self.rpm, 60.0)]) if profile.realistic else None
        self.route("POST", "/search", self._search)
        self.route("POST", "/extract", self._extract)

    def rate_limit_body(self) -> dict[str, Any]:
        return {"detail": {"error": "Your request has been blocked due to excessive requests."}}

    def _answer(self, req: SimRequest) -> SimResponse:
        quota = self.quota
        if quota is not None:  # a tenant's own key has its own minute (same key kind)
            quota = self.per_account(bearer_token(req), quota, lambda: Quota([Window("minute", self.rpm, 60.0)]))
        refused = quota.take() if quota is not None else None
        if refused is None:
            return super()._answer(req)
        wait = max(1, int(refused.retry_after_s + 0.999))
        return SimResponse(429, self.rate_limit_body(), headers={"Retry-After": str(wait)})

    # --- helpers ---------------------------------------------------------------------------
    def _authorised(self, req: SimRequest) -> bool:
        return self.known_key(bearer_token(req), self.api_key)

    @staticmethod
    def _body(req: SimRequest) -> dict[str, Any] | None:
        try:
            body = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _site_url(self, domain: str) -> str:
        return f"http://{domain}:{self.web_port}/" if self.web_port else f"http://{domain}/"

    @staticmethod
    def _request_id(*parts: str) -> str:
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"

    # --- /search ---------------------------------------------------------------------------
    def _search(self, req: SimRequest) -> SimResponse:
        if not self._authorised(req):
            return _error(401, "Unauthorized: missing or invalid API key.")
        body = self._body(req)
        if body is None:
            return _error(400, "Invalid JSON body.")
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return _error(400, "Query is missing.")
        if len(query) > MAX_QUERY_CHARS:
            return _error(400, f"Query is too long. Max query length is {MAX_QUERY_CHARS} characters.")
        depth = body.get("search_depth") or "basic"
        if depth not in DEPTH_CREDITS:
            return _error(400, "Invalid search depth. Must be 'ultra-fast', 'fast', 'basic' or 'advanced'.")
        max_results = body.get("max_results", 5)
        if not isinstance(max_results, int) or isinstance(max_results, bool) or not 0 <= max_results <= MAX_RESULTS:
            return _error(400, f"max_results must be between 0 and {MAX_RESULTS}.")
        results = self._results_for(query, include_raw=bool(body.get("include_raw_content")))[:max_results]
        credits = DEPTH_CREDITS[depth]
        payload: dict[str, Any] = {
            "query": query,
            "answer": None,
            "images": [],
            "results": results,
            "response_time": round(0.4 + stable_fraction("rt", query), 2),
            "request_id": self._request_id("search", query),
        }
        if body.get("include_usage"):
            payload["usage"] = {"credits": credits}
        return SimResponse(200, payload, billable_units=credits)

    def _results_for(self, query: str, *, include_raw: bool) -> list[dict[str, Any]]:
        name = company_from_query(query) or query.strip()
        slug = company_slug(name)
        results: list[dict[str, Any]] = []
        if stable_fraction("tavily-hit", slug) < HIT_RATE:
            domain = sandbox_domain(name)
            text = site_paragraph(name, domain)
            results.append(
                {
                    "url": self._site_url(domain),
                    "title": f"{name} | Official Website",
                    "content": text.split(". ")[0] + ".",
                    "score": round(0.9 + stable_fraction("score", slug) * 0.09, 4),
                    "raw_content": text if include_raw else None,
                }
            )
        for i, host in enumerate(DIRECTORIES):
            text = (
                f"{name} - company profile, UEN, registered address and officers. "
                f"Listing {i + 1} of businesses in Singapore with a similar name."
            )
            results.append(
                {
                    "url": f"https://{host}/company/{slug}",
                    "title": f"{name} - Company Profile | {host.split('.')[0]}",
                    "content": text,
                    "score": round(0.7 - 0.1 * i - stable_fraction("dscore", slug, host) * 0.05, 4),
                    "raw_content": text if include_raw else None,
                }
            )
        return results

    # --- /extract --------------------------------------------------------------------------
    def _extract(self, req: SimRequest) -> SimResponse:
        if not self._authorised(req):
            return _error(401, "Unauthorized: missing or invalid API key.")
        body = self._body(req)
        if body is None:
            return _error(400, "Invalid JSON body.")
        urls = body.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            return _error(400, "urls is required and must be a URL or a list of URLs.")
        if len(urls) > MAX_EXTRACT_URLS:
            return _error(400, f"Max {MAX_EXTRACT_URLS} URLs are allowed.")
        depth = body.get("extract_depth") or "basic"
        if depth not in EXTRACT_DEPTH_CREDITS:
            return _error(400, "Invalid extract depth. Must be 'basic' or 'advanced'.")
        results: list[dict[str, Any]] = []
        failed: list[dict[str, str]] = []
        for url in urls:
            host = (urlsplit(url).hostname or "").lower()
            if is_sandbox_host(host) and host.count(".") >= 2:
                slug = host.split(".", 1)[0]
                results.append({"url": url, "raw_content": site_paragraph(slug.replace("-", " ").title(), host)})
            else:
                failed.append({"url": url, "error": "Failed to fetch url"})
        credits = math.ceil(len(results) / URLS_PER_EXTRACT_CREDIT) * EXTRACT_DEPTH_CREDITS[depth]
        payload: dict[str, Any] = {
            "results": [dict(r, images=[]) for r in results],
            "failed_results": failed,
            "response_time": round(0.2 + 0.1 * len(urls), 2),
            "request_id": self._request_id("extract", *urls),
        }
        if body.get("include_usage"):
            payload["usage"] = {"credits": credits}
        return SimResponse(200, payload, billable_units=credits)
