"""Stage `crawled_sites`: each target's website, found if unknown, crawled politely, snapshotted.

Per company: a snapshot of the same company for the same day (another tenant's, say) is reused
for free. Otherwise a company without a website gets one Tavily search; the top result is taken
only when its domain plausibly is the company's (a directory listing is not), and stored in
`companies.website`. The site is then crawled with robots.txt, the per-domain interval shared by
all workers, the response limits and the SSRF guard (sandbox mode reaches only the web
simulator), and the result is stored in `company_web_snapshots`.

Outcomes: a readable site (ok or thin) is done; a site problem is degraded with reason
`site:<crawl status>` (down, blocked, robots_disallowed, timeout, no_website...), and is stored
too, so no other tenant tries the same broken site again that night.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from leadgen_core import event_loop
from leadgen_core.crawler import CrawlResult, crawl_site
from leadgen_core.enrich import store
from leadgen_core.enrich.context import EnrichContext, Toolkit, open_toolkit
from leadgen_core.enrich.runner import StageReport, finish_report, pending_companies, run_companies
from leadgen_core.enrich.websearch import company_search, domain_of, home_url, plausible_site
from leadgen_core.night.stage_status import Outcome

STAGE = "crawled_sites"
READABLE = frozenset({"ok", "thin"})
NO_SITE_REASON = "no search result is plausibly the company's own site"


def outcome_of(company_id: int, *, status: str, reason: str | None, detail: dict[str, Any]) -> Outcome:
    if status in READABLE:
        return Outcome(company_id, "done", detail=detail)
    return Outcome(company_id, "degraded", f"site:{status}", error=reason, detail=detail)


def _detail(result: CrawlResult) -> dict[str, Any]:
    return {
        "status": result.status, "url": result.url, "pages": len(result.pages), "emails": len(result.emails),
        "text_chars": result.text_chars, "thin": result.thin, "robots_skipped": list(result.robots_skipped)[:20],
        "crawl_s": result.elapsed_s,
    }  # fmt: skip


class Site(NamedTuple):
    url: str  # the home page
    domain: str
    found: bool  # found by search just now: stored with the crawl's snapshot


async def _website(kit: Toolkit, company: store.Company) -> Site | None:
    """The company's site: known, or found by search; None when search finds none. A site found is
    stored with the crawl's snapshot (one statement); until then the search's answer is in the
    Spender's cache, so a retried company does not pay again."""
    if company.website:
        return Site(company.website, company.website_domain or domain_of(company.website), found=False)
    hits = await company_search(kit, company.name)
    top = hits[0]["url"] if hits else None
    if top is None or not plausible_site(company.name, str(top)):
        return None
    kit.count("websites_found")
    return Site(home_url(str(top)), domain_of(str(top)), found=True)


async def crawl_company(kit: Toolkit, company: store.Company) -> Outcome:
    ctx, cid = kit.ctx, company.company_id
    existing = await ctx.in_statement(lambda c: store.crawled(c, company_id=cid, day=ctx.day))
    if existing is not None:
        status, reason, emails = existing
        kit.count("snapshots_reused")
        detail = {"status": status, "reused": True, "emails": emails}
        return outcome_of(cid, status=status, reason=reason, detail=detail)
    site = await _website(kit, company)
    if site is None:
        result = CrawlResult(url="", status="no_website", reason=NO_SITE_REASON)
    else:
        parts = kit.crawler
        if parts is None:
            raise RuntimeError("the stage did not ask for the crawler")
        s = ctx.settings
        result = await crawl_site(
            site.url, fetcher=parts.fetcher, robots=parts.robots, limiter=parts.limiter,
            max_pages=s.crawl_max_pages, site_deadline_s=s.crawler_site_deadline_s,
            user_agent=s.crawler_user_agent, keep_corpus=True,
        )  # fmt: skip
        kit.count("pages_read", len(result.pages))

    found = (site.url, site.domain) if site is not None and site.found else None  # stored with the snapshot
    stored = await ctx.in_statement(
        lambda c: store.save_snapshot(
            c, company_id=cid, day=ctx.day, result=result, persist_corpus=ctx.settings.persist_crawl_corpus,
            site=found,
        )
    )  # fmt: skip
    kit.count("snapshots_stored" if stored else "snapshots_raced")
    return outcome_of(cid, status=result.status, reason=result.reason, detail=_detail(result))


async def crawl_stage(ctx: EnrichContext) -> StageReport:
    started = time.monotonic()
    ids = await pending_companies(ctx, STAGE)
    report = StageReport(STAGE, ctx.dry_run, len(ids))
    companies = await ctx.in_global(lambda c: store.companies(c, ids))
    # Tavily is needed (and must be configured) only when some company has no website yet.
    needs = {"crawler"} | ({"tavily"} if any(not co.website for co in companies.values()) else set())
    async with open_toolkit(ctx, needs=needs) as kit:

        async def work(company_id: int) -> Outcome:
            return await crawl_company(kit, companies[company_id])

        report.outcomes = await run_companies(kit, stage=STAGE, company_ids=ids, work=work)
        return await finish_report(kit, report, started=started)


def run_crawl_stage(ctx: EnrichContext) -> StageReport:
    """Crawl the night's pending targets (the orchestrator's one call for this stage)."""
    return event_loop.run(crawl_stage(ctx))
