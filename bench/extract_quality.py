"""Extraction quality and tokens, before and after the corpus trimming, on the sandbox's ground truth.

    python -m bench.extract_quality [--sites 40] [--budget 2500] [--seed 7]

Real: the product's crawler (robots, SSRF guard, parser) crawls realistic sandbox sites over
loopback; the product's OpenAIExtractor reads each corpus through the official SDK; the trimming
is `leadgen_core.enrich.corpus.build_corpus`. Simulated: the websites (`realistic` profile: 30–400 KB
pages, shared boilerplate, facts buried in copy) and OpenAI (its `realistic` profile reads names,
titles and emails out of the text the way a model would, and counts `usage` from the text).

Ground truth is what the web simulator knows of each site (`WebSim.site(host)`): its email
addresses and its people. Every site is a `robots-open-` host (scenario normal, nothing
disallowed), so every fact is reachable and a missed one is the corpus's fault.

"before" is the corpus as the product built it until now: the crawl's pages in order, cut at
EXTRACT_CORPUS_CHAR_LIMIT (35,000) characters, with a 1,200-token completion limit. "after" is
`build_corpus` at `--budget` tokens with the completion limit sized to the schema. Tokens per
extraction are the `usage` totals; TPM tokens are what a tokens-per-minute limit counts (prompt +
`max_completion_tokens`). Prints a `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field

from bench.common import emit_result, progress
from leadgen_core.crawler.crawl import crawl_site
from leadgen_core.enrich.clients import VendorConfig, crawler_parts
from leadgen_core.enrich.corpus import CRAWL_LABEL, build_corpus
from leadgen_core.enrich.extract_stage import merge_corpus
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.profile import SandboxProfile
from leadgen_core.sandbox.web import SiteSpec, WebSim
from leadgen_core.settings import Settings
from leadgen_core.vendors.openai_extract import EXTRACT_MAX_TOKENS, OpenAIExtractor

KEY = "sandbox-openai-key"
BEFORE_CHAR_LIMIT = 35_000
BEFORE_MAX_TOKENS = 1_200
CRAWL_WORKERS = 8
# the simulators' time scale: quality and token counts do not depend on it, only the wall time
SIM_TIME_SCALE = 50.0


@dataclass
class Score:
    """Micro-averaged counts over every site of one variant."""

    emails_true: int = 0
    emails_found: int = 0
    emails_hit: int = 0
    people_true: int = 0
    people_found: int = 0
    people_hit: int = 0
    tokens: list[int] = field(default_factory=list)
    tpm_tokens: list[int] = field(default_factory=list)
    corpus_chars: list[int] = field(default_factory=list)

    def add(self, site: SiteSpec, *, emails: list[str], people: list[str]) -> None:
        truth_emails, truth_people = set(site.emails), {p.name for p in site.people}
        self.emails_true += len(truth_emails)
        self.emails_found += len(set(emails))
        self.emails_hit += len(truth_emails & set(emails))
        self.people_true += len(truth_people)
        self.people_found += len(set(people))
        self.people_hit += len(truth_people & set(people))

    def recall(self) -> float:
        return (self.emails_hit + self.people_hit) / max(1, self.emails_true + self.people_true)

    def precision(self) -> float:
        return (self.emails_hit + self.people_hit) / max(1, self.emails_found + self.people_found)

    def f1(self) -> float:
        r, p = self.recall(), self.precision()
        return 2 * r * p / (r + p) if r + p else 0.0

    def summary(self) -> dict[str, float]:
        n = max(1, len(self.tokens))
        return {
            "f1": round(self.f1(), 4),
            "recall": round(self.recall(), 4),
            "precision": round(self.precision(), 4),
            "email_recall": round(self.emails_hit / max(1, self.emails_true), 4),
            "people_recall": round(self.people_hit / max(1, self.people_true), 4),
            "tokens_per_extraction": round(sum(self.tokens) / n),
            "tpm_tokens_per_extraction": round(sum(self.tpm_tokens) / n),
            "corpus_chars": round(sum(self.corpus_chars) / n),
        }


@dataclass(frozen=True)
class QualityReport:
    sites: int
    budget: int
    before: dict[str, float]
    after: dict[str, float]


async def _crawl_all(web: WebSim, hosts: list[str]) -> dict[str, str]:
    settings = Settings()
    parts = crawler_parts(VendorConfig(sandbox_web_port=web.port), settings)
    gate = asyncio.Semaphore(CRAWL_WORKERS)

    async def one(host: str) -> tuple[str, str]:
        async with gate:
            result = await crawl_site(
                f"http://{host}/", fetcher=parts.fetcher, robots=parts.robots, limiter=parts.limiter,
                max_pages=settings.crawl_max_pages, site_deadline_s=settings.crawler_site_deadline_s,
                user_agent=settings.crawler_user_agent, keep_corpus=True,
            )  # fmt: skip
            return host, result.corpus or ""

    try:
        return dict(await asyncio.gather(*(one(h) for h in hosts)))
    finally:
        await parts.fetcher.aclose()


async def _extract(openai_url: str, sites: list[tuple[SiteSpec, str, str]], score: Score, *, limit: int) -> None:
    async with OpenAIExtractor(base_url=openai_url, api_key=KEY, max_retries=0) as extractor:
        for site, company, corpus in sites:
            result = await extractor.extract(company_name=company, corpus=corpus)
            score.add(site, emails=result.facts.emails, people=[p.name for p in result.facts.key_people])
            score.tokens.append(result.tokens)
            score.corpus_chars.append(len(corpus))
            # what a TPM limit counts: the prompt (usage minus the answer) plus the completion limit
            answer = len(result.facts.model_dump_json()) // 4
            score.tpm_tokens.append(result.tokens - answer + limit)


def measure(*, sites: int, budget: int, seed: int = 7) -> QualityReport:
    """Crawl SITES realistic sandbox sites, extract each corpus before and after trimming, score both."""
    hosts = [f"robots-open-quality-{i}.sandbox.test" for i in range(sites)]
    realistic = SandboxProfile.parse("realistic", SIM_TIME_SCALE)
    with WebSim(seed=seed, profile=realistic) as web, OpenAISim(api_key=KEY, profile=realistic, tier=5) as llm:
        assert isinstance(web, WebSim)
        corpora = asyncio.run(_crawl_all(web, hosts))
        specs = {h: web.site(h) for h in hosts}
        before, after = Score(), Score()
        old = [
            (specs[h], specs[h].company, merge_corpus([(CRAWL_LABEL, corpora[h])], BEFORE_CHAR_LIMIT)) for h in hosts
        ]
        new = [
            (specs[h], specs[h].company,
             build_corpus([(CRAWL_LABEL, corpora[h])], token_budget=budget, char_limit=BEFORE_CHAR_LIMIT,
                          company=specs[h].company))
            for h in hosts
        ]  # fmt: skip
        url = f"{llm.base_url}/v1"
        asyncio.run(_extract(url, old, before, limit=BEFORE_MAX_TOKENS))
        asyncio.run(_extract(url, new, after, limit=EXTRACT_MAX_TOKENS))
    return QualityReport(sites=sites, budget=budget, before=before.summary(), after=after.summary())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--budget", type=int, default=Settings().extract_token_budget)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    progress(f"crawling and extracting {args.sites} realistic sites, budget {args.budget} tokens")
    report = measure(sites=args.sites, budget=args.budget, seed=args.seed)
    emit_result(
        {"sites": report.sites, "budget": report.budget, "before": report.before, "after": report.after}
    )  # fmt: skip


if __name__ == "__main__":
    main()
