"""Stage `web_extractions`: structured company facts from the crawled text, via OpenAI.

Per company: an extraction of the same company for the same day is reused for free. A thin
crawl (missing, not ok, little text or no email) is topped up through Tavily: the company search
(usually a cache hit from the crawl stage) and Extract on its top results; the company's own site
is not sent to Tavily when robots.txt or the SSRF guard kept us from it. The texts lose their
repeated boilerplate and keep their most relevant passages up to EXTRACT_TOKEN_BUDGET tokens
(`enrich.corpus`), and are read by the OpenAI extractor, whose answer is validated against
the schema and the corpus (`vendors.openai_extract`) before anything is stored. The company's
employee estimate is filled from the facts.

OpenAI estimates are upper bounds: prompt characters / 3, plus the completion limit, plus room
for the JSON schema the API adds to the prompt, so a reservation always covers the real charge.
A Tavily problem does not stop the extraction when the crawl gave text; the item is then degraded
with the Tavily reason even though facts were stored (a transient one too: a retry would reuse the
stored extraction, not ask Tavily again). With no text at all, a transient Tavily failure leaves
the item failed, and the next materialisation tries again.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from leadgen_core import event_loop
from leadgen_core.enrich import store
from leadgen_core.enrich.context import EnrichContext, Toolkit, open_toolkit
from leadgen_core.enrich.corpus import CRAWL_LABEL, build_corpus
from leadgen_core.enrich.grounding import ground_facts, own_pages_text
from leadgen_core.enrich.runner import StageReport, error_outcome, finish_report, pending_companies, run_companies
from leadgen_core.enrich.websearch import company_search, domain_of, extract_pages
from leadgen_core.errors import VendorError
from leadgen_core.night.stage_status import Outcome
from leadgen_core.spend.spender import DryRunSkipped
from leadgen_core.vendors.openai_extract import EXTRACT_MAX_TOKENS, PROMPT_VERSION, SYSTEM_PROMPT, CompanyFacts

STAGE = "web_extractions"
EXTRACT_TOP_URLS = 3
PROMPT_OVERHEAD_CHARS = 600  # the instruction line, the company name and the corpus delimiters
SCHEMA_OVERHEAD_TOKENS = 600  # structured outputs add the JSON schema to the prompt
DRY_RUN_ASSUMED_CORPUS_CHARS = 6_000  # forecast for a company whose text would come from Tavily
UNREACHABLE_OWN_SITE = frozenset({"robots_disallowed", "blocked"})


def openai_estimate(corpus_chars: int) -> int:
    """An upper bound of the tokens one extraction can cost."""
    return (
        (len(SYSTEM_PROMPT) + corpus_chars + PROMPT_OVERHEAD_CHARS) // 3
        + 1
        + EXTRACT_MAX_TOKENS
        + (SCHEMA_OVERHEAD_TOKENS)
    )


def merge_corpus(parts: list[tuple[str, str]], limit: int) -> str:
    """Labelled texts in order, cut to LIMIT characters in total (the corpus before `build_corpus`;
    kept as the baseline of the extraction-quality benchmark)."""
    blocks: list[str] = []
    used = 0
    for label, text in parts:
        text = text.strip()
        room = limit - used - 2
        if not text or room <= len(label) + 3:
            continue
        block = f"# {label}\n{text}"[:room]
        blocks.append(block)
        used += len(block) + 2
    return "\n\n".join(blocks)


async def tavily_texts(kit: Toolkit, company: store.Company, *, snap: store.Snapshot | None) -> list[tuple[str, str]]:
    """Search snippets and extracted page text about the company."""
    hits = await company_search(kit, company.name)
    own = company.website_domain or (domain_of(company.website) if company.website else "")
    skip_own = snap is not None and snap.status in UNREACHABLE_OWN_SITE
    urls = [str(h["url"]) for h in hits if not (skip_own and own and domain_of(str(h["url"])) == own)]
    texts: list[tuple[str, str]] = []
    if urls[:EXTRACT_TOP_URLS]:
        pages = await extract_pages(kit, urls[:EXTRACT_TOP_URLS])
        texts += [(f"tavily:extract {p['url']}", p["text"]) for p in pages]
    texts += [(f"tavily:search {h['url']}", str(h.get("content") or "")) for h in hits]
    return texts


async def extract_facts(kit: Toolkit, company: store.Company, *, corpus: str) -> tuple[CompanyFacts, int]:
    extractor = kit.openai
    if extractor is None:
        raise RuntimeError("the stage did not ask for the OpenAI client")
    model = kit.ctx.vendors.openai_model or kit.ctx.settings.openai_model
    request = {
        "op": "extract", "model": model, "company": company.name, "prompt": PROMPT_VERSION,
        "corpus_sha256": hashlib.sha256(corpus.encode("utf-8")).hexdigest(),
    }  # fmt: skip

    async def run() -> tuple[Any, int]:
        result = await extractor.extract(company_name=company.name, corpus=corpus)
        return {"facts": result.facts.model_dump(), "tokens": result.tokens}, result.tokens

    # the extractor's own RPM/TPM limiter paces it: no slot from the request-only limiter as well
    slots = 0 if extractor.limiter is not None else 1
    paid = await kit.paid(
        vendor="openai", request=request, estimate=openai_estimate(len(corpus)), run=run, requests=slots
    )
    # re-validated even from the cache: nothing but the schema's fields ever leaves this function
    return CompanyFacts.model_validate(paid.value["facts"]), int(paid.value.get("tokens") or 0)


async def extract_company(kit: Toolkit, company: store.Company) -> Outcome:
    ctx, cid = kit.ctx, company.company_id
    done, snap = await ctx.in_statement(lambda c: store.inputs(c, company_id=cid, day=ctx.day))  # one statement
    if done is not None:
        kit.count("extractions_reused")
        return Outcome(cid, "done", detail={"reused": True})
    parts: list[tuple[str, str]] = [(CRAWL_LABEL, snap.corpus)] if snap is not None and snap.corpus else []
    problem: Outcome | None = None
    if snap is None or snap.thin:
        kit.count("thin_crawls")
        try:
            parts += await tavily_texts(kit, company, snap=snap)
        except (VendorError, TimeoutError) as exc:  # the crawl's text may still be enough
            problem = error_outcome(cid, exc, secrets=kit.secrets)
            if isinstance(exc, DryRunSkipped) and not parts:
                kit.spender.forecast.add("openai", openai_estimate(DRY_RUN_ASSUMED_CORPUS_CHARS))
    corpus = build_corpus(
        parts, token_budget=ctx.settings.extract_token_budget,
        char_limit=ctx.settings.extract_corpus_char_limit, company=company.name,
    )  # fmt: skip
    if not corpus:
        return problem or Outcome(cid, "degraded", "no_corpus", detail={"crawl_status": snap.status if snap else None})
    facts, tokens = await extract_facts(kit, company, corpus=corpus)
    # only people (and titles) the company's own pages show are kept (leadgen_core.enrich.grounding)
    own_domain = company.website_domain or (domain_of(company.website) if company.website else None)
    ungrounded = 0
    if facts.key_people:  # the own pages' folded text (~0.5 ms a site) only when there is someone to check
        facts, ungrounded = ground_facts(facts, own_text=own_pages_text(parts, own_domain=own_domain))
    kit.count("people_ungrounded", ungrounded)
    sources = sorted({label.split(" ", 1)[0] for label, _ in parts})
    await ctx.in_statement(
        lambda c: store.save_extraction(
            c, company_id=cid, day=ctx.day, sources=sources, facts=facts.model_dump(),
            corpus_chars=len(corpus), tokens=tokens,
        )
    )  # fmt: skip
    kit.count("extractions_stored")
    detail = {
        "sources": sources, "corpus_chars": len(corpus), "tokens": tokens, "emails": len(facts.emails),
        "people": len(facts.key_people), "employees_est": facts.employees_est,
    }  # fmt: skip
    if problem is not None:
        return Outcome(cid, "degraded", problem.reason, error=problem.error, detail=detail)
    return Outcome(cid, "done", detail=detail)


async def extract_stage(ctx: EnrichContext) -> StageReport:
    started = time.monotonic()
    ids = await pending_companies(ctx, STAGE)
    report = StageReport(STAGE, ctx.dry_run, len(ids))
    companies = await ctx.in_global(lambda c: store.companies(c, ids))
    if not ctx.dry_run:
        await ctx.in_global(lambda c: store.purge_handoffs(c, day=ctx.day))
    async with open_toolkit(ctx, needs={"tavily", "openai"} if ids else set()) as kit:

        async def work(company_id: int) -> Outcome:
            return await extract_company(kit, companies[company_id])

        report.outcomes = await run_companies(kit, stage=STAGE, company_ids=ids, work=work)
        return await finish_report(kit, report, started=started)


def run_extract_stage(ctx: EnrichContext) -> StageReport:
    """Extract facts for the night's pending targets (the orchestrator's one call for this stage)."""
    return event_loop.run(extract_stage(ctx))
