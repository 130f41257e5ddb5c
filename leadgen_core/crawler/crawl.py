"""`crawl_site`: a company website in a few polite, robots-aware, SSRF-safe requests.

The home page comes first; then up to `max_pages - 1` more pages (max_pages counts the home
page) chosen by relevance from the home page's same-site links: about, contact, team, people,
leadership, careers... Pages robots.txt disallows are recorded and never requested. Every request
waits its turn on the shared `DomainLimiter` (at the robots.txt crawl-delay when that is longer),
and the whole site has one deadline.

Site problems never raise: they become a status and a reason. Statuses: "ok", "thin" (reachable
but little text), "down", "blocked" (SSRF guard), "robots_disallowed", "not_html", "too_large",
"no_website", "timeout". If the deadline passes after the home page was read, the pages read so
far are kept and the reason says the crawl was cut short.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from leadgen_core.crawler.domain_limiter import DomainLimiter, domain_key
from leadgen_core.crawler.fetch import (
    FetchResult,
    FetchTimeout,
    FetchUnreachable,
    SafeFetcher,
    TooManyRedirects,
    UnsupportedContentType,
)
from leadgen_core.crawler.parse import PageSignals, parse_page
from leadgen_core.crawler.robots import RobotsCache
from leadgen_core.crawler.ssrf import check_url
from leadgen_core.errors import BlockedAddress, FetchError, ResponseTooLarge
from leadgen_core.sandbox_contract import is_sandbox_host

CrawlStatus = Literal[
    "ok", "thin", "down", "blocked", "robots_disallowed", "not_html", "too_large", "no_website", "timeout"
]
THIN_MIN_TEXT_CHARS = 400
MAX_EMAILS = 50
MAX_PHONES = 20
MAX_SOCIAL_LINKS = 20
# every page's text (CRAWL_MAX_PAGES × parse.MAX_TEXT_CHARS): the extraction drops the repeats and
# keeps the relevant passages (enrich.corpus), so the team page must not be cut off the end here
MAX_CORPUS_CHARS = 130_000
# Path/anchor words that point at pages naming the company's people and contact details.
RELEVANCE = {
    "contact": 10,
    "about": 9,
    "team": 9,
    "people": 9,
    "leadership": 9,
    "management": 8,
    "founder": 8,
    "who-we-are": 8,
    "our-story": 6,
    "company": 5,
    "staff": 6,
    "directors": 7,
    "careers": 4,
    "jobs": 3,
}
SKIP_EXTENSIONS = (".pdf", ".jpg", ".jpeg", ".png", ".gif", ".zip", ".doc", ".docx", ".xls", ".xlsx", ".mp4")


@dataclass(frozen=True)
class CrawledPage:
    url: str
    title: str
    text_chars: int


@dataclass(frozen=True)
class CrawlResult:
    """The outcome of one site crawl; `thin` says whether a search fallback is worth it."""

    url: str
    status: CrawlStatus
    reason: str
    pages: tuple[CrawledPage, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    social_links: tuple[str, ...] = ()
    text_chars: int = 0
    robots_skipped: tuple[str, ...] = ()
    page_errors: tuple[str, ...] = ()
    corpus: str | None = None
    elapsed_s: float = 0.0

    @property
    def thin(self) -> bool:
        return self.status != "ok" or self.text_chars < THIN_MIN_TEXT_CHARS or not self.emails


@dataclass
class _Acc:
    """What a crawl has gathered so far; survives the deadline cancelling the crawl."""

    url: str
    started: float
    keep_corpus: bool
    pages: list[CrawledPage] = field(default_factory=list)
    signals: list[PageSignals] = field(default_factory=list)
    robots_skipped: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def result(self, status: CrawlStatus, reason: str) -> CrawlResult:
        def merged(attr: str, cap: int) -> tuple[str, ...]:
            seen: dict[str, None] = {}
            for sig in self.signals:
                for value in getattr(sig, attr):
                    if len(seen) < cap:
                        seen.setdefault(value, None)
            return tuple(seen)

        corpus = None
        if self.keep_corpus and self.signals:
            corpus = "\n\n".join(f"# {p.url}\n{s.text}" for p, s in zip(self.pages, self.signals, strict=True))
            corpus = corpus[:MAX_CORPUS_CHARS]
        return CrawlResult(
            url=self.url,
            status=status,
            reason=reason,
            pages=tuple(self.pages),
            emails=merged("emails", MAX_EMAILS),
            phones=merged("phones", MAX_PHONES),
            social_links=merged("social_links", MAX_SOCIAL_LINKS),
            text_chars=sum(p.text_chars for p in self.pages),
            robots_skipped=tuple(self.robots_skipped),
            page_errors=tuple(self.page_errors),
            corpus=corpus,
            elapsed_s=round(time.monotonic() - self.started, 3),
        )

    def content_status(self) -> CrawlStatus:
        return "ok" if sum(p.text_chars for p in self.pages) >= THIN_MIN_TEXT_CHARS else "thin"


def start_urls(url_or_domain: str) -> list[str]:
    """URLs to try for what a registry or search gave us ("acme.com" -> https, then http)."""
    raw = url_or_domain.strip()
    if "://" in raw:
        return [raw]
    rest = raw if "/" in raw else raw + "/"
    host = raw.split("/", 1)[0].split(":")[0]
    # The sandbox simulator speaks plain HTTP; a real bare domain is tried over HTTPS first,
    # and over HTTP only when HTTPS cannot be reached at all (many small sites lack TLS).
    if is_sandbox_host(host):
        return [f"http://{rest}"]
    return [f"https://{rest}", f"http://{rest}"]


def _failure(exc: FetchError) -> tuple[CrawlStatus, str]:
    """The crawl status a failed home-page fetch stands for."""
    if isinstance(exc, BlockedAddress):
        return "blocked", f"SSRF guard: {exc}"
    if isinstance(exc, ResponseTooLarge):
        return "too_large", str(exc)
    if isinstance(exc, UnsupportedContentType):
        return "not_html", str(exc)
    if isinstance(exc, FetchTimeout):
        return "timeout", str(exc)
    if isinstance(exc, TooManyRedirects):
        return "down", f"redirect loop: {exc}"
    return "down", str(exc)


def _rank(home: PageSignals, home_url: str, max_links: int) -> list[str]:
    """Same-site links from the home page, most relevant first, irrelevant ones dropped."""
    home_key = domain_key(urlsplit(home_url).hostname or "")
    scored: list[tuple[int, int, str]] = []
    for order, (url, label) in enumerate(home.anchors):
        parts = urlsplit(url)
        if domain_key(parts.hostname or "") != home_key or parts.path in ("", "/"):
            continue
        if parts.path.lower().endswith(SKIP_EXTENSIONS):
            continue
        haystack = f"{parts.path} {label}".lower().replace(" ", "-")
        score = max((weight for word, weight in RELEVANCE.items() if word in haystack), default=0)
        if score:
            scored.append((-score, order, url))
    return [url for _, _, url in sorted(scored)[:max_links]]


@dataclass(frozen=True)
class _Ctx:
    fetcher: SafeFetcher
    robots: RobotsCache
    limiter: DomainLimiter
    user_agent: str

    async def get(self, url: str) -> FetchResult:
        """Wait for the domain's turn and fetch one HTML page (a non-2xx answer raises)."""
        delay = await self.robots.crawl_delay(url, self.user_agent, fetcher=self.fetcher)
        await self.limiter.wait(urlsplit(url).hostname or "", min_interval_s=delay)
        result = await self.fetcher.fetch(url)
        if not 200 <= result.status < 300:
            raise FetchError(f"{url}: HTTP {result.status}")
        return result


async def _home(acc: _Acc, ctx: _Ctx, url: str) -> tuple[CrawlResult | FetchResult, bool]:
    """Robots check and home-page fetch: the page, or the final result when the site is unusable;
    plus whether nothing answered at all (so the other scheme is worth a try)."""
    try:
        rules = await ctx.robots.rules_for(url, fetcher=ctx.fetcher)
    except BlockedAddress as exc:
        return acc.result("blocked", f"SSRF guard: {exc}"), False
    if rules.status == "disallow_all":
        # RFC 9309: an unreachable robots.txt means "crawl nothing"; the site is unusable to us.
        status: CrawlStatus = "timeout" if rules.failure == "timeout" else "down"
        return acc.result(status, rules.reason), rules.failure == "unreachable"
    if not rules.can_fetch(url, ctx.user_agent):
        acc.robots_skipped.append(url)
        return acc.result("robots_disallowed", f"robots.txt disallows the home page for {ctx.user_agent}"), False
    try:
        return await ctx.get(url), False
    except FetchError as exc:
        return acc.result(*_failure(exc)), isinstance(exc, FetchUnreachable)


async def _crawl(acc: _Acc, ctx: _Ctx, *, candidates: list[str], max_pages: int) -> CrawlResult:
    outcome: CrawlResult | FetchResult = acc.result("no_website", "no usable website address")
    for url in candidates:
        acc.url = url
        outcome, unreachable = await _home(acc, ctx, url)
        if not unreachable:
            break
    if isinstance(outcome, CrawlResult):
        return outcome
    base = outcome.final_url
    home = parse_page(outcome.text, base)
    acc.pages.append(CrawledPage(base, home.title, home.text_chars))
    acc.signals.append(home)

    for url in _rank(home, base, max_links=max(0, max_pages - 1)):
        try:
            if not await ctx.robots.can_fetch(url, ctx.user_agent, fetcher=ctx.fetcher):
                acc.robots_skipped.append(url)
                continue
            result = await ctx.get(url)
        except FetchError as exc:
            # A bad sub-page (even one redirecting somewhere blocked) does not spoil the site.
            acc.page_errors.append(f"{url}: {exc}")
            continue
        page = parse_page(result.text, result.final_url)
        acc.pages.append(CrawledPage(result.final_url, page.title, page.text_chars))
        acc.signals.append(page)
    return acc.result(
        acc.content_status(), f"{len(acc.pages)} page(s) read, {len(acc.robots_skipped)} disallowed by robots.txt"
    )


async def crawl_site(
    url_or_domain: str,
    *,
    fetcher: SafeFetcher,
    robots: RobotsCache,
    limiter: DomainLimiter,
    max_pages: int,
    site_deadline_s: float,
    user_agent: str,
    keep_corpus: bool,
) -> CrawlResult:
    """Crawl one company site; never raises for site problems (see the module docstring)."""
    raw = (url_or_domain or "").strip()
    acc = _Acc(url=raw, started=time.monotonic(), keep_corpus=keep_corpus)
    if not raw:
        return acc.result("no_website", "no website known")
    candidates = start_urls(raw)
    try:
        check_url(candidates[0])
    except BlockedAddress as exc:
        return acc.result("blocked", f"SSRF guard: {exc}")
    except FetchError as exc:
        return acc.result("no_website", f"unusable website address: {exc}")
    ctx = _Ctx(fetcher=fetcher, robots=robots, limiter=limiter, user_agent=user_agent)
    try:
        async with asyncio.timeout(site_deadline_s):
            return await _crawl(acc, ctx, candidates=candidates, max_pages=max_pages)
    except TimeoutError:
        if not acc.pages:
            return acc.result("timeout", f"no answer from the home page within the {site_deadline_s:g}s site deadline")
        return acc.result(
            acc.content_status(), f"site deadline {site_deadline_s:g}s reached after {len(acc.pages)} page(s)"
        )
