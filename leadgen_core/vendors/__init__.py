"""HTTP clients of the paid vendors: Tavily (search), Lusha (contacts), ZeroBounce (email
verification) and OpenAI (extraction). Each takes a base URL and key, so the same code talks to
the real API or to the loopback simulators in `leadgen_core.sandbox`."""

from __future__ import annotations

from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.http import request_json
from leadgen_core.vendors.lusha import Contact, LushaClient, LushaResult
from leadgen_core.vendors.openai_extract import CompanyFacts, ExtractionResult, OpenAIExtractor, Person
from leadgen_core.vendors.tavily import (
    ExtractedPage,
    TavilyClient,
    TavilyExtractResult,
    TavilyHit,
    TavilySearchResult,
)
from leadgen_core.vendors.zerobounce import Verification, ZeroBounceClient

__all__ = [
    "CompanyFacts",
    "Contact",
    "ExtractedPage",
    "ExtractionResult",
    "LushaClient",
    "LushaResult",
    "OpenAIExtractor",
    "Person",
    "RetryPolicy",
    "TavilyClient",
    "TavilyExtractResult",
    "TavilyHit",
    "TavilySearchResult",
    "Verification",
    "ZeroBounceClient",
    "request_json",
]
