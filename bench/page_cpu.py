"""CPU per site of the two page-sized steps of a night: parsing the crawl's pages and building the
extraction corpus, on the realistic sandbox's sites (30–400 KB of HTML a page).

    python -m bench.page_cpu [--sites N]

Each site is the simulator's five pages ("/", "/about", "/contact", "/team", "/careers") made by
`leadgen_core.sandbox.web_realistic.realistic_page`; `crawler.parse.parse_page` parses every page
and `enrich.corpus.build_corpus` builds the site's corpus from their texts as the extraction stage
does (EXTRACT_TOKEN_BUDGET 1,500, EXTRACT_CORPUS_CHAR_LIMIT 35,000). Times are process CPU time, so
other work on the machine skews them little. No database, no network.
"""

from __future__ import annotations

import argparse
import time

from bench.common import emit_result, progress
from leadgen_core.crawler.parse import parse_page
from leadgen_core.enrich.corpus import CRAWL_LABEL, build_corpus
from leadgen_core.sandbox.web import WebSim
from leadgen_core.sandbox.web_realistic import realistic_page

PATHS = ("/", "/about", "/contact", "/team", "/careers")
SEED = 7


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.page_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=80, help="sites to generate (default 80)")
    args = parser.parse_args(argv)
    sim = WebSim(seed=SEED)  # not started: only its deterministic site specs are used
    started = time.process_time()
    sites = []
    for i in range(args.sites):
        spec = sim.site(f"bench{i}-trading.example.sg")
        sites.append((spec, [realistic_page(SEED, spec, path) for path in PATHS]))
    generate_s = time.process_time() - started
    html_bytes = sum(len(page) for _, pages in sites for page in pages)
    progress(f"{args.sites} sites, {html_bytes / len(sites) / len(PATHS) / 1000:.0f} KB of HTML a page")
    started = time.process_time()
    parsed = [[parse_page(page, f"https://{spec.host}{path}") for path, page in zip(PATHS, pages, strict=True)]
              for spec, pages in sites]  # fmt: skip
    parse_s = time.process_time() - started
    started = time.process_time()
    for (spec, _), signals in zip(sites, parsed, strict=True):
        text = "\n\n".join(f"# https://{spec.host}{path}\n{s.text}" for path, s in zip(PATHS, signals, strict=True))
        build_corpus([(CRAWL_LABEL, text)], token_budget=1_500, char_limit=35_000, company=spec.company)
    corpus_s = time.process_time() - started
    per_site = 1000 / len(sites)
    emit_result({
        "sites": len(sites),
        "html_kb_per_page": round(html_bytes / len(sites) / len(PATHS) / 1000, 1),
        "generate_ms_per_site": round(generate_s * per_site, 2),
        "parse_ms_per_site": round(parse_s * per_site, 2),
        "corpus_ms_per_site": round(corpus_s * per_site, 2),
    })  # fmt: skip


if __name__ == "__main__":
    main()
