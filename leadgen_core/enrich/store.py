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
SET_WEBSITE_SQL = """
UPDATE companies SET website = %(url)s, website_domain = %(domain)s, updated_at = now()
WHERE company_id = %(company)s AND website IS NULL
"""
SNAPSHOT_SQL = """
SELECT s.url, s.status, s.reason, s.emails, s.phones, s.social_links, s.pages, s.text_chars,
       coalesce(s.corpus, h.corpus)
FROM company_web_snapshots s
LEFT JOIN company_web_corpus_handoff h ON h.company_id = s.company_id AND h.crawled_on = s.crawled_on
WHERE s.company_id = %s AND s.crawled_on = %s
"""
# What the crawl needs to know of a snapshot already stored (a re-run): no corpus, no join.
CRAWLED_SQL = """
SELECT status, reason, cardinality(emails) FROM company_web_snapshots WHERE company_id = %s AND crawled_on = %s
"""
SAVE_SNAPSHOT_SQL = """
INSERT INTO company_web_snapshots
    (company_id, crawled_on, url, status, reason, emails, phones, social_links, pages, text_chars, corpus)
VALUES (%(company)s, %(day)s, %(url)s, %(status)s, %(reason)s, %(emails)s, %(phones)s, %(social)s, %(pages)s,
        %(text_chars)s, %(corpus)s)
ON CONFLICT (company_id, crawled_on) DO NOTHING
"""
SAVE_HANDOFF_SQL = """
INSERT INTO company_web_corpus_handoff (company_id, crawled_on, corpus) VALUES (%s, %s, %s)
ON CONFLICT (company_id, crawled_on) DO NOTHING
"""
DELETE_HANDOFF_SQL = "DELETE FROM company_web_corpus_handoff WHERE company_id = %s AND crawled_on = %s"
PURGE_HANDOFFS_SQL = "DELETE FROM company_web_corpus_handoff WHERE crawled_on < %s"
EXTRACTION_SQL = """
SELECT sources, facts, corpus_chars, tokens FROM company_extractions WHERE company_id = %s AND extracted_on = %s
"""
SAVE_EXTRACTION_SQL = """
INSERT INTO company_extractions (company_id, extracted_on, sources, facts, summary, corpus_chars, tokens)
VALUES (%(company)s, %(day)s, %(sources)s, %(facts)s, %(summary)s, %(corpus_chars)s, %(tokens)s)
ON CONFLICT (company_id, extracted_on) DO NOTHING
"""
SET_EMPLOYEES_SQL = """
UPDATE companies SET employees_est = %(n)s, updated_at = now()
WHERE company_id = %(company)s AND employees_est IS DISTINCT FROM %(n)s
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


def set_website(conn: psycopg.Connection, *, company_id: int, url: str, domain: str) -> None:
    conn.execute(SET_WEBSITE_SQL, {"url": url, "domain": domain, "company": company_id})


def snapshot(conn: psycopg.Connection, *, company_id: int, day: date) -> Snapshot | None:
    row = conn.execute(SNAPSHOT_SQL, (company_id, day)).fetchone()
    if row is None:
        return None
    return Snapshot(
        url=row[0], status=str(row[1]), reason=row[2], emails=tuple(row[3] or ()), phones=tuple(row[4] or ()),
        social_links=tuple(row[5] or ()), pages=list(row[6] or []), text_chars=int(row[7]), corpus=row[8],
    )  # fmt: skip


def crawled(conn: psycopg.Connection, *, company_id: int, day: date) -> tuple[str, str | None, int] | None:
    """(status, reason, number of emails) of the company's snapshot for DAY, if one is stored. One statement."""
    row = conn.execute(CRAWLED_SQL, (company_id, day)).fetchone()
    return None if row is None else (str(row[0]), row[1], int(row[2] or 0))


def snapshot_pages(result: CrawlResult) -> list[dict[str, Any]]:
    """Title and text size of each page read. Only pages read: scoring counts this array as the
    pages crawled; what robots.txt kept us from is in the reason and the stage's outcome detail."""
    return [{"url": p.url, "title": p.title, "text_chars": p.text_chars} for p in result.pages]


def save_snapshot(
    conn: psycopg.Connection, *, company_id: int, day: date, result: CrawlResult, persist_corpus: bool
) -> bool:
    """Store the crawl; False when another tenant stored this company's snapshot for DAY first."""
    corpus = result.corpus or None
    inserted = conn.execute(
        SAVE_SNAPSHOT_SQL,
        {
            "company": company_id, "day": day, "url": result.url or None, "status": result.status,
            "reason": result.reason[:500], "emails": list(result.emails), "phones": list(result.phones),
            "social": list(result.social_links), "pages": Jsonb(snapshot_pages(result)),
            "text_chars": result.text_chars, "corpus": corpus if persist_corpus else None,
        },
    ).rowcount  # fmt: skip
    if inserted and corpus and not persist_corpus:
        conn.execute(SAVE_HANDOFF_SQL, (company_id, day, corpus))
    return bool(inserted)


def purge_handoffs(conn: psycopg.Connection, *, day: date) -> int:
    return int(conn.execute(PURGE_HANDOFFS_SQL, (day - timedelta(days=HANDOFF_KEEP_DAYS),)).rowcount)


@dataclass(frozen=True)
class StoredExtraction:
    sources: list[str]
    facts: dict[str, Any] | None
    corpus_chars: int
    tokens: int


def extraction(conn: psycopg.Connection, *, company_id: int, day: date) -> StoredExtraction | None:
    row = conn.execute(EXTRACTION_SQL, (company_id, day)).fetchone()
    if row is None:
        return None
    return StoredExtraction(list(row[0] or []), row[1], int(row[2]), int(row[3]))


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
    """Store the facts, fill the company's employee estimate, and drop the consumed hand-off."""
    conn.execute(
        SAVE_EXTRACTION_SQL,
        {
            "company": company_id, "day": day, "sources": sources, "facts": Jsonb(facts),
            "summary": str(facts.get("description") or "")[:1000] or None, "corpus_chars": corpus_chars,
            "tokens": tokens,
        },
    )  # fmt: skip
    employees = facts.get("employees_est")
    if isinstance(employees, int) and employees > 0:
        conn.execute(SET_EMPLOYEES_SQL, {"n": employees, "company": company_id})
    conn.execute(DELETE_HANDOFF_SQL, (company_id, day))
