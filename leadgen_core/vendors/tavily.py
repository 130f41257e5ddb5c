"""Tavily Search and Extract client.

Sends `Authorization: Bearer <key>` and the documented JSON bodies; asks for `include_usage` so the
credits Tavily reports are what the budget ledger records (falling back to the documented price
when a response omits them). Results are capped and validated before they leave this module.

Both endpoints are billable, so a request that timed out after it was sent is never re-sent
(`request_json` raises `ChargeUncertain`; the Spender records its reservation as an uncertain
charge and the item is left failed, for a later attempt), as for ZeroBounce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from leadgen_core.errors import VendorResponseError
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.base import VendorClient
from leadgen_core.vendors.http import expect_list

VENDOR = "tavily"
MAX_RESULTS = 20
MAX_QUERY_CHARS = 400
MAX_EXTRACT_URLS = 100
EXTRACT_BATCH = 20
URLS_PER_EXTRACT_CREDIT = 5
MAX_TEXT_CHARS = 200_000
MAX_SNIPPET_CHARS = 2_000
SEARCH_CREDITS = {"basic": 1, "fast": 1, "ultra-fast": 1, "advanced": 2}


@dataclass(frozen=True)
class TavilyHit:
    url: str
    title: str
    content: str
    score: float
    raw_content: str | None


@dataclass(frozen=True)
class TavilySearchResult:
    results: tuple[TavilyHit, ...]
    credits: int


@dataclass(frozen=True)
class ExtractedPage:
    url: str
    raw_content: str


@dataclass(frozen=True)
class TavilyExtractResult:
    results: tuple[ExtractedPage, ...]
    failed_urls: tuple[str, ...]
    credits: int


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _credits(body: dict[str, Any], fallback: int) -> int:
    usage = body.get("usage")
    credits = usage.get("credits") if isinstance(usage, dict) else None
    if isinstance(credits, (int, float)) and not isinstance(credits, bool) and credits >= 0:
        return math.ceil(credits)
    return fallback


class TavilyClient(VendorClient):
    """Async Tavily client (`Authorization: Bearer`)."""

    VENDOR = VENDOR

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 20.0,
        retry: RetryPolicy | None = None,
        search_depth: str = "basic",
    ) -> None:
        if search_depth not in SEARCH_CREDITS:
            raise ValueError(f"search_depth must be one of {sorted(SEARCH_CREDITS)}")
        super().__init__(base_url=base_url, api_key=api_key, http=http, timeout_s=timeout_s, retry=retry)
        self._depth = search_depth

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        # search and extract are billed: never re-sent once they may have reached Tavily unanswered
        return await self._request("POST", path, json=body, billable=True)

    async def search(self, query: str, *, max_results: int = 5, include_raw_content: bool = True) -> TavilySearchResult:
        """One web search; `credits` is what Tavily charged for it."""
        query = " ".join(query.split())
        if not query or len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query must be 1-{MAX_QUERY_CHARS} characters")
        max_results = max(1, min(max_results, MAX_RESULTS))
        body = await self._post(
            "/search",
            {
                "query": query,
                "search_depth": self._depth,
                "max_results": max_results,
                "include_raw_content": include_raw_content,
                "include_answer": False,
                "include_images": False,
                "include_usage": True,
            },
        )
        hits: list[TavilyHit] = []
        for item in expect_list(VENDOR, body.get("results"), what="/search results")[:max_results]:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise VendorResponseError(VENDOR, "/search: a result without a url")
            score = item.get("score")
            hits.append(
                TavilyHit(
                    url=item["url"],
                    title=_text(item.get("title"), MAX_SNIPPET_CHARS),
                    content=_text(item.get("content"), MAX_SNIPPET_CHARS),
                    score=float(score) if isinstance(score, (int, float)) else 0.0,
                    raw_content=_text(item.get("raw_content"), MAX_TEXT_CHARS) or None,
                )
            )
        return TavilySearchResult(tuple(hits), _credits(body, SEARCH_CREDITS[self._depth]))

    async def extract(self, urls: Sequence[str]) -> TavilyExtractResult:
        """Page text for up to MAX_EXTRACT_URLS URLs, in batches of EXTRACT_BATCH."""
        wanted = list(dict.fromkeys(u.strip() for u in urls if u.strip()))[:MAX_EXTRACT_URLS]
        pages: list[ExtractedPage] = []
        failed: list[str] = []
        credits = 0
        for start in range(0, len(wanted), EXTRACT_BATCH):
            batch = wanted[start : start + EXTRACT_BATCH]
            body = await self._post("/extract", {"urls": batch, "extract_depth": "basic", "include_usage": True})
            ok = 0
            for item in expect_list(VENDOR, body.get("results"), what="/extract results")[: len(batch)]:
                if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                    raise VendorResponseError(VENDOR, "/extract: a result without a url")
                pages.append(ExtractedPage(item["url"], _text(item.get("raw_content"), MAX_TEXT_CHARS)))
                ok += 1
            for item in expect_list(VENDOR, body.get("failed_results"), what="/extract failed_results")[: len(batch)]:
                if isinstance(item, dict) and isinstance(item.get("url"), str):
                    failed.append(item["url"])
            credits += _credits(body, math.ceil(ok / URLS_PER_EXTRACT_CREDIT))
        return TavilyExtractResult(tuple(pages), tuple(failed), credits)
