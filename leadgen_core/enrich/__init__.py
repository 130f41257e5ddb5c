"""Enrichment: the night's targets crawled, extracted, given contacts and verified addresses.

Each stage is one call the orchestrator makes with an `EnrichContext`; it works the pending
companies concurrently, records one outcome per company, and returns a `StageReport`.
"""

from __future__ import annotations

from leadgen_core.enrich.clients import DEFAULT_RATES, RateSpec, VendorConfig
from leadgen_core.enrich.contacts_stage import run_contacts_stage
from leadgen_core.enrich.context import EnrichContext
from leadgen_core.enrich.crawl_stage import run_crawl_stage
from leadgen_core.enrich.extract_stage import run_extract_stage
from leadgen_core.enrich.runner import StageReport
from leadgen_core.enrich.verify_stage import run_verify_stage

__all__ = [
    "DEFAULT_RATES",
    "EnrichContext",
    "RateSpec",
    "StageReport",
    "VendorConfig",
    "run_contacts_stage",
    "run_crawl_stage",
    "run_extract_stage",
    "run_verify_stage",
]
