"""The enrichment stages' one-statement reads and writes (leadgen_core.enrich.store).

A crawl's record (the website search found, the snapshot, the corpus hand-off), an extraction's
record (the facts, the employee estimate, the hand-off's end) and the read of a company's night
(its extraction and snapshot) are each one statement, its own transaction, on a connection outside
any transaction block (`Database.global_statement`), as the stages run them. Real Postgres, the
application role.
"""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from leadgen_core.crawler import CrawlResult
from leadgen_core.crawler.crawl import CrawledPage
from leadgen_core.db.pool import Database
from leadgen_core.enrich import store

DAY = date(2026, 11, 20)


@pytest.fixture
def company(owner_conn: psycopg.Connection) -> int:
    row = owner_conn.execute(
        "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
        "VALUES ('201900001A', 'Acme Pte Ltd', 'h', current_date, current_date) RETURNING company_id"
    ).fetchone()
    assert row is not None
    return int(row[0])


def crawl(text: str = "About Acme. " * 200) -> CrawlResult:
    page = CrawledPage(url="https://acme.example/", title="Acme", text_chars=len(text))
    return CrawlResult(
        url="https://acme.example/", status="ok", reason="", pages=(page,), emails=("hello@acme.example",),
        text_chars=len(text), corpus=f"# https://acme.example/\n{text}",
    )  # fmt: skip


def row(owner: psycopg.Connection, sql: str, *params: object) -> tuple[object, ...] | None:
    return owner.execute(sql, params).fetchone()  # type: ignore[arg-type]


def test_a_crawl_is_recorded_in_one_statement_and_a_second_tenant_stores_nothing(
    app_db: Database, owner_conn: psycopg.Connection, company: int
) -> None:
    result = crawl()
    with app_db.global_statement() as conn:
        stored = store.save_snapshot(conn, company_id=company, day=DAY, result=result, persist_corpus=False,
                                     site=("https://acme.example/", "acme.example"))  # fmt: skip
    assert stored
    assert row(owner_conn, "SELECT website, website_domain FROM companies WHERE company_id = %s", company) == (
        "https://acme.example/", "acme.example",
    )  # fmt: skip
    # the corpus is handed off, not kept with the snapshot (PERSIST_CRAWL_CORPUS off)
    assert row(owner_conn, "SELECT corpus IS NULL, text_chars FROM company_web_snapshots") == (True, result.text_chars)
    assert row(owner_conn, "SELECT corpus FROM company_web_corpus_handoff") == (result.corpus,)

    # another tenant's crawl of the same company that night: raced, so nothing of it is written
    other = crawl("Something else entirely. " * 50)
    with app_db.global_statement() as conn:
        again = store.save_snapshot(conn, company_id=company, day=DAY, result=other, persist_corpus=False,
                                    site=("https://elsewhere.example/", "elsewhere.example"))  # fmt: skip
    assert not again
    assert row(owner_conn, "SELECT count(*), min(corpus) FROM company_web_corpus_handoff") == (1, result.corpus)
    assert row(owner_conn, "SELECT website FROM companies WHERE company_id = %s", company) == ("https://acme.example/",)


def test_a_persisted_corpus_stays_with_the_snapshot_and_no_site_leaves_the_company_alone(
    app_db: Database, owner_conn: psycopg.Connection, company: int
) -> None:
    before = row(owner_conn, "SELECT website, updated_at FROM companies WHERE company_id = %s", company)
    result = crawl()
    with app_db.global_statement() as conn:
        assert store.save_snapshot(conn, company_id=company, day=DAY, result=result, persist_corpus=True)
    assert row(owner_conn, "SELECT corpus FROM company_web_snapshots") == (result.corpus,)
    assert row(owner_conn, "SELECT count(*) FROM company_web_corpus_handoff") == (0,)
    assert row(owner_conn, "SELECT website, updated_at FROM companies WHERE company_id = %s", company) == before


def test_the_nights_inputs_are_read_in_one_statement(
    app_db: Database, owner_conn: psycopg.Connection, company: int
) -> None:
    with app_db.global_statement() as conn:
        assert store.inputs(conn, company_id=company, day=DAY) == (None, None)
        store.save_snapshot(conn, company_id=company, day=DAY, result=crawl(), persist_corpus=False)
    with app_db.global_statement() as conn:
        extraction, snap = store.inputs(conn, company_id=company, day=DAY)
    assert extraction is None and snap is not None
    assert snap.corpus == crawl().corpus and snap.emails == ("hello@acme.example",) and not snap.thin
    assert snap.pages == [{"url": "https://acme.example/", "title": "Acme", "text_chars": crawl().text_chars}]

    facts = {"description": "Acme makes anvils.", "employees_est": 42}
    with app_db.global_statement() as conn:
        store.save_extraction(conn, company_id=company, day=DAY, sources=["crawl"], facts=facts,
                              corpus_chars=1234, tokens=567)  # fmt: skip
    # the facts stored, the company's estimate filled, the consumed hand-off gone
    assert row(owner_conn, "SELECT employees_est FROM companies WHERE company_id = %s", company) == (42,)
    assert row(owner_conn, "SELECT count(*) FROM company_web_corpus_handoff") == (0,)
    with app_db.global_statement() as conn:
        extraction, snap = store.inputs(conn, company_id=company, day=DAY)
    assert extraction == store.StoredExtraction(["crawl"], facts, 1234, 567)
    assert snap is not None and snap.corpus is None  # handed off, consumed: the snapshot keeps no text


def test_an_extraction_without_an_estimate_keeps_the_companys_and_a_second_one_changes_nothing(
    app_db: Database, owner_conn: psycopg.Connection, company: int
) -> None:
    owner_conn.execute("UPDATE companies SET employees_est = 7 WHERE company_id = %s", (company,))
    for facts in ({"description": "first", "employees_est": None}, {"description": "second", "employees_est": 0}):
        with app_db.global_statement() as conn:
            store.save_extraction(conn, company_id=company, day=DAY, sources=["tavily"], facts=facts,
                                  corpus_chars=10, tokens=20)  # fmt: skip
    assert row(owner_conn, "SELECT employees_est FROM companies WHERE company_id = %s", company) == (7,)
    assert row(owner_conn, "SELECT count(*), min(summary) FROM company_extractions") == (1, "first")
