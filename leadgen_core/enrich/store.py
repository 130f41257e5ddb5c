"""The SQL of the enrichment stages: companies, web snapshots, corpus hand-offs, extractions.

Snapshots and extractions are global and keyed by (company, day): whichever tenant gets there
first writes them (`ON CONFLICT DO NOTHING`), every other tenant that night reads them for free.
Contacts and verification SQL live in `contacts_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core.crawler import CrawlResult
from leadgen_core.crawler.crawl import THIN_MIN_TEXT_CHARS

HANDOFF_KEEP_DAYS = 2
COMPANIES_SQL = "SELECT company_id, name, website, website_domain FROM companies WHERE company_id = ANY(%s)"
# What the crawl needs to know of a snapshot already stored (a re-run): no corpus, no join.
CRAWLED_SQL = """
SELECT status, reason, cardinality(emails) FROM company_web_snapshots WHERE company_id = %s AND crawled_on = %s
"""
# A crawl's record in one statement (its own transaction): the website search found (if any), the
# snapshot, and the corpus hand-off only when this statement stored the snapshot. Returns 1 when it
# did, 0 when another tenant's snapshot was there first.
SAVE_SNAPSHOT_SQL = """
WITH w AS (
    UPDATE companies SET website = %(site_url)s, website_domain = %(site_domain)s, updated_at = now()
    WHERE %(site_url)s::text IS NOT NULL AND company_id = %(company)s AND website IS NULL
    RETURNING 1
),
s AS (
    INSERT INTO company_web_snapshots
        (company_id, crawled_on, url, status, reason, emails, phones, social_links, pages, text_chars, corpus)
    VALUES (%(company)s, %(day)s, %(url)s, %(status)s, %(reason)s, %(emails)s, %(phones)s, %(social)s, %(pages)s,
            %(text_chars)s, %(corpus)s)
    ON CONFLICT (company_id, crawled_on) DO NOTHING
    RETURNING 1
),
h AS (
    INSERT INTO company_web_corpus_handoff (company_id, crawled_on, corpus)
    SELECT %(company)s, %(day)s, %(handoff)s::text WHERE %(handoff)s::text IS NOT NULL AND EXISTS (SELECT 1 FROM s)
    ON CONFLICT (company_id, crawled_on) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM w) + (SELECT count(*) FROM h)
"""
# What the extraction and the contacts stages read of a company's night in one statement: its
# extraction, then its snapshot with the corpus (stored, or handed off). NULLs where either is missing.
INPUTS_SQL = """
SELECT e.sources, e.facts, e.corpus_chars, e.tokens, e.company_id IS NOT NULL,
       s.url, s.status, s.reason, s.emails, s.phones, s.social_links, s.pages, s.text_chars,
       coalesce(s.corpus, h.corpus), s.company_id IS NOT NULL
FROM (SELECT %(company)s::bigint AS company_id, %(day)s::date AS day) k
LEFT JOIN company_extractions e ON e.company_id = k.company_id AND e.extracted_on = k.day
LEFT JOIN company_web_snapshots s ON s.company_id = k.company_id AND s.crawled_on = k.day
LEFT JOIN company_web_corpus_handoff h ON h.company_id = s.company_id AND h.crawled_on = s.crawled_on
"""
PURGE_HANDOFFS_SQL = "DELETE FROM company_web_corpus_handoff WHERE crawled_on < %s"
# An extraction's record in one statement (its own transaction): the facts, the company's employee
# estimate (when the facts have one), and the end of the consumed corpus hand-off.
SAVE_EXTRACTION_SQL = """
WITH e AS (
    INSERT INTO company_extractions (company_id, extracted_on, sources, facts, summary, corpus_chars, tokens)
    VALUES (%(company)s, %(day)s, %(sources)s, %(facts)s, %(summary)s, %(corpus_chars)s, %(tokens)s)
    ON CONFLICT (company_id, extracted_on) DO NOTHING
    RETURNING 1
),
n AS (
    UPDATE companies SET employees_est = %(n)s, updated_at = now()
    WHERE %(n)s::integer IS NOT NULL AND company_id = %(company)s AND employees_est IS DISTINCT FROM %(n)s::integer
    RETURNING 1
)
DELETE FROM company_web_corpus_handoff WHERE company_id = %(company)s AND crawled_on = %(day)s
"""


@dataclass(frozen=True)
class Company:
    company_id: int
    name: str
    website: str | None
    website_domain: str | None


@dataclass(frozen=True)
class Snapshot:
    url: str | None
    status: str
    reason: str | None
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    social_links: tuple[str, ...]
    pages: list[dict[str, Any]]
    text_chars: int
    corpus: str | None

    @property
    def thin(self) -> bool:
        """The crawl's own definition: not ok, little text, or no email address."""
        return self.status != "ok" or self.text_chars < THIN_MIN_TEXT_CHARS or not self.emails


def companies(conn: psycopg.Connection, ids: list[int]) -> dict[int, Company]:
    rows = conn.execute(COMPANIES_SQL, (ids,)).fetchall()
    return {int(r[0]): Company(int(r[0]), str(r[1]), r[2], r[3]) for r in rows}


def inputs(conn: psycopg.Connection, *, company_id: int, day: date) -> tuple[StoredExtraction | None, Snapshot | None]:
    """The company's extraction and snapshot (with its corpus) for DAY, each None when not stored: one statement."""
    row = conn.execute(INPUTS_SQL, {"company": company_id, "day": day}).fetchone()
    if row is None:  # the key row always comes back; kept for the type checker
        return None, None
    extraction = StoredExtraction(list(row[0] or []), row[1], int(row[2]), int(row[3])) if row[4] else None
    snapshot = (
        Snapshot(
            url=row[5],
            status=str(row[6]),
            reason=row[7],
            emails=tuple(row[8] or ()),
            phones=tuple(row[9] or ()),
            social_links=tuple(row[10] or ()),
            pages=list(row[11] or []),
            text_chars=int(row[12]),
            corpus=row[13],
        )  # fmt: skip
        if row[14]
        else None
    )
    return extraction, snapshot


def crawled(conn: psycopg.Connection, *, company_id: int, day: date) -> tuple[str, str | None, int] | None:
    """(status, reason, number of emails) of the company's snapshot for DAY, if one is stored. One statement."""
    row = conn.execute(CRAWLED_SQL, (company_id, day)).fetchone()
    return None if row is None else (str(row[0]), row[1], int(row[2] or 0))


def snapshot_pages(result: CrawlResult) -> list[dict[str, Any]]:
    """Title and text size of each page read. Only pages read: scoring counts this array as the
    pages crawled; what robots.txt kept us from is in the reason and the stage's outcome detail."""
    return [{"url": p.url, "title": p.title, "text_chars": p.text_chars} for p in result.pages]


def save_snapshot(
    conn: psycopg.Connection,
    *,
    company_id: int,
    day: date,
    result: CrawlResult,
    persist_corpus: bool,
    site: tuple[str, str] | None = None,
) -> bool:
    """Store the crawl, and SITE (url, domain) as the company's website when it has none: one
    statement. False when another tenant stored this company's snapshot for DAY first."""
    corpus = result.corpus or None
    row = conn.execute(
        SAVE_SNAPSHOT_SQL,
        {
            "company": company_id, "day": day, "url": result.url or None, "status": result.status,
            "reason": result.reason[:500], "emails": list(result.emails), "phones": list(result.phones),
            "social": list(result.social_links), "pages": Jsonb(snapshot_pages(result)),
            "text_chars": result.text_chars, "corpus": corpus if persist_corpus else None,
            "handoff": None if persist_corpus else corpus,
            "site_url": site[0] if site else None, "site_domain": site[1] if site else None,
        },
    ).fetchone()  # fmt: skip
    return bool(row and row[0])


def purge_handoffs(conn: psycopg.Connection, *, day: date) -> int:
    return int(conn.execute(PURGE_HANDOFFS_SQL, (day - timedelta(days=HANDOFF_KEEP_DAYS),)).rowcount)


@dataclass(frozen=True)
class StoredExtraction:
    sources: list[str]
    facts: dict[str, Any] | None
    corpus_chars: int
    tokens: int


def save_extraction(
    conn: psycopg.Connection,
    *,
    company_id: int,
    day: date,
    sources: list[str],
    facts: dict[str, Any],
    corpus_chars: int,
    tokens: int,
) -> None:
    """Store the facts, fill the company's employee estimate, and drop the consumed hand-off: one statement."""
    employees = facts.get("employees_est")
    conn.execute(
        SAVE_EXTRACTION_SQL,
        {
            "company": company_id, "day": day, "sources": sources, "facts": Jsonb(facts),
            "summary": str(facts.get("description") or "")[:1000] or None, "corpus_chars": corpus_chars,
            "tokens": tokens, "n": employees if isinstance(employees, int) and employees > 0 else None,
        },
    )  # fmt: skip
