"""Tavily, paid through the Spender: the company search and page extraction the stages share.

The crawl stage (finding a website) and the extraction stage (a thin crawl's fallback) send the
very same search request, so the second one is a response-cache hit: a company costs one search
a night however many stages and tenants ask about it.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from leadgen_core.enrich.context import Toolkit
from leadgen_core.sandbox_contract import company_slug, is_sandbox_host
from leadgen_core.vendors.tavily import SEARCH_CREDITS, URLS_PER_EXTRACT_CREDIT

VENDOR = "tavily"
SEARCH_MAX_RESULTS = 5
SEARCH_DEPTH = "basic"
MIN_TOKEN_CHARS = 3
MIN_LABEL_CHARS = 4
# Words that say nothing about which company a domain belongs to.
GENERIC_WORDS = frozenset(
    {
        "singapore", "sg", "asia", "pacific", "global", "international", "group", "holdings", "holding",
        "services", "service", "solutions", "trading", "enterprise", "enterprises", "company", "the", "and",
        "of", "management", "consultancy", "consulting", "industries", "technologies", "technology",
    }
)  # fmt: skip
_TOKEN_SPLIT = re.compile(r"-+")


def search_query(name: str) -> str:
    return f"{' '.join(name.split())} Singapore official website"


def search_request(name: str) -> dict[str, Any]:
    """The canonical request (and response-cache key) of a company search."""
    return {"op": "search", "query": search_query(name), "max_results": SEARCH_MAX_RESULTS, "depth": SEARCH_DEPTH}


async def company_search(kit: Toolkit, name: str) -> list[dict[str, Any]]:
    """The search results for a company: url, title, snippet and score of each, best first."""
    tavily = kit.tavily
    if tavily is None:
        raise RuntimeError("the stage did not ask for the Tavily client")
    request = search_request(name)

    async def run() -> tuple[Any, int]:
        result = await tavily.search(request["query"], max_results=SEARCH_MAX_RESULTS, include_raw_content=False)
        hits = [{"url": h.url, "title": h.title, "content": h.content, "score": h.score} for h in result.results]
        return hits, result.credits

    paid = await kit.paid(vendor=VENDOR, request=request, estimate=SEARCH_CREDITS[SEARCH_DEPTH], run=run)
    return [h for h in paid.value if isinstance(h, dict) and isinstance(h.get("url"), str)]


async def extract_pages(kit: Toolkit, urls: list[str]) -> list[dict[str, str]]:
    """Page text for URLS through Tavily Extract (failed URLs are not charged)."""
    tavily = kit.tavily
    if tavily is None:
        raise RuntimeError("the stage did not ask for the Tavily client")
    wanted = sorted(dict.fromkeys(urls))
    request = {"op": "extract", "urls": wanted, "depth": "basic"}

    async def run() -> tuple[Any, int]:
        result = await tavily.extract(wanted)
        return [{"url": p.url, "text": p.raw_content} for p in result.results], result.credits

    estimate = math.ceil(len(wanted) / URLS_PER_EXTRACT_CREDIT)
    paid = await kit.paid(vendor=VENDOR, request=request, estimate=estimate, run=run)
    return [p for p in paid.value if isinstance(p, dict) and isinstance(p.get("text"), str)]


def host_of(url: str) -> str:
    try:
        host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def domain_of(url: str) -> str:
    """The site's domain as stored in companies.website_domain ("www." dropped)."""
    return host_of(url).removeprefix("www.")


def home_url(url: str) -> str:
    """The site's home page. A sandbox site drops its port: the resolver maps 80 to the web sim,
    so the stored address outlives a sandbox restart on another port."""
    parts = urlsplit(url)
    host = host_of(url)
    port = parts.port if parts.port and not is_sandbox_host(host) else None
    scheme = parts.scheme.lower() if parts.scheme in ("http", "https") else "https"
    return f"{scheme}://{host}{f':{port}' if port else ''}/"


def plausible_site(name: str, url: str) -> bool:
    """Whether URL's domain plausibly belongs to the company NAME (so a directory page is not)."""
    label = domain_of(url).split(".", 1)[0].replace("-", "")
    if not label:
        return False
    words = [w for w in _TOKEN_SPLIT.split(company_slug(name)) if w]
    tokens = [w for w in words if w not in GENERIC_WORDS] or words
    compact = "".join(tokens)
    acronym = "".join(t[0] for t in tokens)
    first = tokens[0] if tokens else ""
    return bool(
        (len(first) >= MIN_TOKEN_CHARS and first in label)
        or (len(label) >= MIN_LABEL_CHARS and label in compact)
        or (len(acronym) >= 2 and label == acronym)
    )
