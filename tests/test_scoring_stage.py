"""The scoring stage (leadgen_core.leads.score_stage) end to end against the database.

Real: Postgres (the night's evidence seeded as the owner into the global tables the enrichment
stages fill, and the tenant's targets; the stage runs as the application role under RLS), the
budget ledger, the response cache, the shared rate limiter, stage status, the OpenAI SDK client.
Simulated: OpenAI (OpenAISim on loopback; its request log proves what was and was not called).

The seeding helpers here are shared with test_odoo_sync.py and test_export.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from leadgen_core.db.pool import Database
from leadgen_core.leads.score_stage import RATIONALE_BATCH, STAGE, ScoreContext, ScoreReport, run_score_stage
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.scoring import LeadFeatures
from leadgen_core.settings import Settings
from leadgen_core.vendors.openai_extract import OpenAIExtractor
from tests.conftest import add_tenant

DAY = date(2026, 3, 2)
TENANT = "acme"
RULES = {"ssic_codes": ["62011"], "employee_range": {"min": 10, "max": 200},
         "incorporation_year": {"min": 2000, "max": 2025}}  # fmt: skip
LEVELS = ("high", "mid", "low")
COMPLETIONS = "/v1/chat/completions"
OPENAI_KEY = "sk-test-0d5c1e"


@dataclass(frozen=True)
class Seeded:
    company_id: int
    uen: str
    level: str
    domain: str


def seed_company(owner: psycopg.Connection, i: int, level: str, *, tenant: str = TENANT, day: date = DAY) -> Seeded:
    """A target of strength LEVEL with the evidence the enrichment stages would have stored."""
    uen, domain = f"2019{i:05d}K", f"co{i}.example"
    website = level != "low"
    cid = owner.execute(
        "INSERT INTO companies (uen, name, website, website_domain, industry_code, secondary_ssic_code, industry_norm,"
        " incorporation_year, employees_est, address, content_hash, first_seen, last_seen)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'Software', %s, %s, '1 Main St', '\\x00', %s, %s) RETURNING company_id",
        (uen, f"Company {i} Pte Ltd", f"https://{domain}" if website else None, domain if website else None,
         "62011" if level == "high" else "46900", "62011", {"high": 2015, "mid": 2010, "low": 1990}[level],
         {"high": 50, "mid": None, "low": 3}[level], day, day),
    ).fetchone()[0]  # type: ignore[index]  # fmt: skip
    matched = "primary_ssic" if level == "high" else "secondary_ssic"
    owner.execute("INSERT INTO icp_candidates VALUES (%s, %s, %s, %s)", (tenant, day, cid, matched))
    owner.execute(
        "INSERT INTO daily_targets (tenant_id, run_date, company_id, priority) VALUES (%s, %s, %s, %s)",
        (tenant, day, cid, i),
    )
    if level == "low":
        return Seeded(cid, uen, level, domain)
    high = level == "high"
    owner.execute(
        "INSERT INTO company_web_snapshots (company_id, crawled_on, url, status, social_links, pages, text_chars,"
        " corpus) VALUES (%s, %s, %s, %s, %s, %s, %s, 'page text')",
        (cid, day, f"https://{domain}", "ok" if high else "partial",
         ["https://x.example/a", "https://x.example/b", "https://x.example/c"] if high else [],
         Jsonb([{"url": f"https://{domain}/{n}"} for n in range(5 if high else 2)]), 6000 if high else 1500),
    )  # fmt: skip
    facts: dict[str, Any] = {"description": "We build software."}
    if high:
        facts |= {"industry": "Software", "products": ["ERP"], "hq": "Singapore"}
    owner.execute(
        "INSERT INTO company_extractions (company_id, extracted_on, facts, summary) VALUES (%s, %s, %s, 'summary')",
        (cid, day, Jsonb(facts)),
    )
    person = ("Alice Tan", "CEO", f"alice@{domain}", "valid") if high else ("Bob Lim", "Sales Manager",
                                                                          f"bob@{domain}", "catch-all")  # fmt: skip
    add_contact(owner, cid, name=person[0], title=person[1], email=person[2], status=person[3])
    if high:
        add_mailbox(owner, cid, email=f"info@{domain}", status="catch-all")
    return Seeded(cid, uen, level, domain)


def add_contact(owner: psycopg.Connection, cid: int, *, name: str, title: str, email: str, status: str | None,
                free: bool = False) -> None:  # fmt: skip
    contact_id = owner.execute(
        "INSERT INTO contacts (company_id, full_name, title, email, source) VALUES (%s, %s, %s, %s, 'crawl')"
        " RETURNING contact_id",
        (cid, name, title, email),
    ).fetchone()[0]  # type: ignore[index]
    owner.execute(
        "INSERT INTO lead_emails (email, company_id, contact_id, source) VALUES (%s, %s, %s, 'crawl')",
        (email.lower(), cid, contact_id),
    )
    if status:
        owner.execute(
            "INSERT INTO email_verification_cache (email, status, free_email) VALUES (%s, %s, %s)",
            (email.lower(), status, free),
        )


def add_mailbox(owner: psycopg.Connection, cid: int, *, email: str, status: str) -> None:
    owner.execute("INSERT INTO lead_emails (email, company_id, source) VALUES (%s, %s, 'crawl')", (email, cid))
    owner.execute("INSERT INTO email_verification_cache (email, status) VALUES (%s, %s)", (email, status))


def seed_night(owner: psycopg.Connection, *, n: int = 9, tenant: str = TENANT, start: int = 0) -> list[Seeded]:
    """A tenant (ICP rules, Odoo connection row) and N targets cycling through the three levels."""
    if owner.execute("SELECT 1 FROM tenants WHERE tenant_id = %s", (tenant,)).fetchone() is None:
        add_tenant(owner, tenant, rules=RULES)
    return [seed_company(owner, start + i, LEVELS[i % 3], tenant=tenant) for i in range(n)]


def settings(**overrides: Any) -> Settings:
    """Settings independent of the developer's environment (no vendor key unless given)."""
    base: dict[str, Any] = {"openai_api_key": None, "openai_base_url": None, "score_min_export": 0.66,
                            "freemail_policy": "low_confidence", "sched_company_concurrency": 4}  # fmt: skip

    def alias(name: str) -> str:
        a = Settings.model_fields[name].validation_alias
        return a if isinstance(a, str) else str(a.choices[0])  # type: ignore[union-attr]

    return Settings(**{alias(k): v for k, v in (base | overrides).items()})


def score_ctx(db: Database, s: Settings, *, dry_run: bool = False, tenant: str = TENANT, run_id: str = "run-1") -> ScoreContext:  # fmt: skip
    return ScoreContext(
        tenant_id=tenant, day=DAY, run_id=run_id, settings=s, dry_run=dry_run,
        tenant_conn=lambda: db.tenant_transaction(tenant), global_conn=lambda: db.global_transaction(),
    )  # fmt: skip


def rows(owner: psycopg.Connection, sql: str, *params: object) -> list[tuple]:
    return owner.execute(sql, params).fetchall()


SCORES_SNAPSHOT = ("SELECT company_id, score, bucket, contributions, rationale, rationale_source, run_id "
                   "FROM lead_scores ORDER BY company_id")  # fmt: skip


@pytest.fixture(scope="module")
def openai() -> Iterator[OpenAISim]:
    sim = OpenAISim(api_key=OPENAI_KEY)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def llm(openai: OpenAISim) -> Settings:
    openai.reset_log()
    return settings(openai_api_key=OPENAI_KEY, openai_base_url=f"{openai.base_url}/v1")


def test_scores_contributions_rationales_and_spend(app_db: Database, owner_conn, openai, llm) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_night(owner_conn)
    report = run_score_stage(score_ctx(app_db, llm))
    stored = rows(owner_conn, SCORES_SNAPSHOT)
    assert len(stored) == len(seeded) == report.pending
    for _cid, score, _bucket, contributions, rationale, source, run_id in stored:
        assert 0.0 <= score <= 1.0
        assert math.isclose(sum(contributions.values()), score, abs_tol=1e-9)
        assert rationale.strip() and source == "llm" and run_id == "run-1"
    by_level = {s.company_id: s.level for s in seeded}
    scores = {cid: (score, bucket) for cid, score, bucket, *_ in stored}
    assert all(scores[c][1] == "high" for c, lvl in by_level.items() if lvl == "high")
    assert all(scores[c][0] < 0.66 for c, lvl in by_level.items() if lvl != "high")
    # the stored features are the ones scored: their hash is reproducible from the JSON
    for features, feature_hash in rows(owner_conn, "SELECT features, feature_hash FROM lead_features"):
        assert LeadFeatures.model_validate(features).feature_hash() == feature_hash
    assert len(rows(owner_conn, "SELECT 1 FROM lead_features")) == len(seeded)
    # the leads' rationales shared requests (10 to one); each lead was booked in the ledger, and the
    # ledger settled to exactly what the vendor charged
    assert len(openai.requests_to(COMPLETIONS)) == math.ceil(len(seeded) / RATIONALE_BATCH) == report.rationale_requests
    assert rows(owner_conn, "SELECT units, calls FROM vendor_usage WHERE vendor = 'openai'") == [
        (openai.billable_units, len(seeded))
    ]
    # each lead's paragraph is its own: the one the batch answer gave for its ref
    for (cid, score, bucket, *_rest), (rationale,) in zip(
        stored, rows(owner_conn, "SELECT rationale FROM lead_scores ORDER BY company_id"), strict=True
    ):
        assert f": {bucket} ({score:.2f})." in rationale.split("\n")[0], (cid, rationale)
    assert report.counts().done == len(seeded) and report.summary.count == len(seeded)
    assert report.summary.sources == {"llm": len(seeded)}


def test_rerun_is_idempotent_and_pays_nothing(app_db: Database, owner_conn, openai, llm) -> None:  # type: ignore[no-untyped-def]
    seed_night(owner_conn)
    run_score_stage(score_ctx(app_db, llm))
    first = rows(owner_conn, SCORES_SNAPSHOT)
    usage = rows(owner_conn, "SELECT units, calls FROM vendor_usage")
    openai.reset_log()
    again = run_score_stage(score_ctx(app_db, llm, run_id="run-2"))
    assert again.pending == 0 and rows(owner_conn, SCORES_SNAPSHOT) == first
    assert openai.requests_to(COMPLETIONS) == [] and rows(owner_conn, "SELECT units, calls FROM vendor_usage") == usage
    # forcing a re-score (status lost) rewrites the same scores; rationales come from the response cache
    owner_conn.execute("DELETE FROM company_stage_status WHERE stage = %s", (STAGE,))
    rescored = run_score_stage(score_ctx(app_db, llm, run_id="run-3"))
    assert openai.requests_to(COMPLETIONS) == [] and rescored.cache_hits == {"openai": len(first)}
    after = rows(owner_conn, SCORES_SNAPSHOT)
    assert [r[:5] for r in after] == [r[:5] for r in first]
    assert {r[5] for r in after} == {"cache"} and {r[6] for r in after} == {"run-3"}
    assert len(after) == len(first)  # upserted, not duplicated


def test_rationales_go_through_the_keys_token_buckets(app_db: Database, owner_conn, openai, llm) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.spend.openai_limiter import OpenAILimiter

    seed_night(owner_conn)
    run_score_stage(score_ctx(app_db, llm))
    assert llm.openai_api_key is not None
    expected = OpenAILimiter(
        app_db.global_transaction, api_key=llm.openai_api_key.get_secret_value(), model=llm.openai_model,
        rpm=1, tpm=1,
    )  # fmt: skip
    # the same buckets the extraction stage books (one key, one model): rows exist only once booked
    buckets = {r[0] for r in rows(owner_conn, "SELECT bucket FROM rate_limit_token_buckets")}
    # (and the tenant's share of the key's tokens per minute: tenants on one key share it fairly)
    assert buckets == {expected.requests.bucket, expected.tokens.bucket, f"{expected.tokens.bucket}:tenant:{TENANT}"}
    assert openai.requests_to(COMPLETIONS)
    # ...and not the request-only slot limiter any more
    assert rows(owner_conn, "SELECT bucket FROM rate_limit_buckets WHERE bucket = 'vendor:openai'") == []


def test_tenant_weights_from_icp_rules(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    seed_night(owner_conn, n=3)
    weights = dict.fromkeys(("size_fit", "age", "data_completeness", "email_tier", "contact_seniority",
                             "web_presence"), 0.0) | {"icp_fit": 2.0}  # fmt: skip
    owner_conn.execute(
        "UPDATE icp_rules SET payload = %s WHERE tenant_id = %s", (Jsonb(RULES | {"weights": weights}), TENANT)
    )
    run_score_stage(score_ctx(app_db, settings()))
    for features, contributions, score in rows(
        owner_conn, "SELECT f.features, s.contributions, s.score FROM lead_scores s JOIN lead_features f USING "
        "(tenant_id, run_date, company_id)"
    ):  # fmt: skip
        assert score == features["icp_fit"]  # only the ICP fit weighs
        assert {k for k, v in contributions.items() if v} <= {"icp_fit"}


def test_budget_exhausted_falls_back_to_template(app_db: Database, owner_conn, openai, llm) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_night(owner_conn, n=3)
    owner_conn.execute("INSERT INTO tenant_budgets VALUES (%s, 'openai', 10)", (TENANT,))
    report = run_score_stage(score_ctx(app_db, llm))
    assert openai.requests_to(COMPLETIONS) == []
    stored = rows(owner_conn, "SELECT s.rationale, s.rationale_source, c.name FROM lead_scores s JOIN companies c "
                              "USING (company_id)")  # fmt: skip
    assert len(stored) == len(seeded)
    assert all(src == "template" and text.startswith(name[:20]) for text, src, name in stored)
    assert report.degraded_by_reason() == {"budget:openai": len(seeded)}
    statuses = rows(owner_conn, "SELECT DISTINCT status, reason FROM company_stage_status WHERE stage = %s", STAGE)
    assert statuses == [("degraded", "budget:openai")]
    assert rows(owner_conn, "SELECT coalesce(sum(units), 0) FROM vendor_usage") == [(0,)]


def test_dry_run_calls_nothing_and_writes_nothing(app_db: Database, owner_conn, openai, llm) -> None:  # type: ignore[no-untyped-def]
    seeded = seed_night(owner_conn)
    report: ScoreReport = run_score_stage(score_ctx(app_db, llm, dry_run=True))
    assert openai.requests_to(COMPLETIONS) == []
    for table in ("lead_scores", "lead_features", "company_stage_status", "vendor_usage"):
        assert rows(owner_conn, f"SELECT count(*) FROM {table}") == [(0,)], table
    assert report.forecast_calls == {"openai": math.ceil(len(seeded) / RATIONALE_BATCH)}  # requests, batched
    assert report.forecast_units["openai"] > 0
    assert len(report.leads) == len(seeded) and report.counts().degraded == len(seeded)


def test_suppressed_companies_and_addresses(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    high, _, _, high2 = seed_night(owner_conn, n=4)
    # a person at another mail domain, suppressed by that domain: the company stays, the address does not count
    owner_conn.execute("DELETE FROM lead_emails WHERE company_id = %s", (high2.company_id,))
    owner_conn.execute("DELETE FROM contacts WHERE company_id = %s", (high2.company_id,))
    add_contact(owner_conn, high2.company_id, name="Dan Ong", title="CEO", email="dan@partner.example", status="valid")
    owner_conn.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, %s, 'email'),"
                       " (%s, 'partner.example', 'domain')", (TENANT, f"alice@{high.domain}", TENANT))  # fmt: skip
    run_score_stage(score_ctx(app_db, settings()))
    assert rows(
        owner_conn, "SELECT status, reason FROM company_stage_status WHERE company_id = %s", high.company_id
    ) == [("skipped", "suppressed")]
    assert rows(owner_conn, "SELECT 1 FROM lead_scores WHERE company_id = %s", high.company_id) == []
    (features,) = rows(owner_conn, "SELECT features FROM lead_features WHERE company_id = %s", high2.company_id)[0]
    assert features["email_tier"] == 0.0 and features["contact_seniority"] == 1.0


def test_vendor_rejection_degrades_without_leaking_the_key(app_db: Database, owner_conn, openai) -> None:  # type: ignore[no-untyped-def]
    seed_night(owner_conn, n=2)
    wrong = "sk-wrong-9f8e7d6c5b4a"
    writer = OpenAIExtractor(base_url=f"{openai.base_url}/v1", api_key=wrong, max_retries=0)
    report = run_score_stage(score_ctx(app_db, settings()), writer=writer)
    assert report.degraded_by_reason() == {"vendor:openai": 2}
    errors = rows(owner_conn, "SELECT last_error FROM company_stage_status WHERE stage = %s", STAGE)
    assert errors and all(e and "VendorAuthError" in e and wrong not in e for (e,) in errors)
    assert rows(owner_conn, "SELECT DISTINCT rationale_source FROM lead_scores") == [("template",)]
    assert rows(owner_conn, "SELECT coalesce(sum(units), 0) FROM vendor_usage") == [(0,)]  # released


def test_an_openai_outage_leaves_scores_stored_with_templates_and_the_stage_not_failed(
    app_db: Database, owner_conn
) -> None:  # type: ignore[no-untyped-def]
    """Only the prose is missing when OpenAI is down: every lead keeps its score and a template
    rationale, degraded `vendor_down:openai`, so the stage does not fail and the night reaches Odoo."""
    from leadgen_core.sandbox.base import FaultConfig

    seed_night(owner_conn, n=3)
    with OpenAISim(api_key=OPENAI_KEY, faults=FaultConfig(error_rate=1.0)) as down:
        writer = OpenAIExtractor(base_url=f"{down.base_url}/v1", api_key=OPENAI_KEY, max_retries=0)
        report = run_score_stage(score_ctx(app_db, settings()), writer=writer)
    assert report.degraded_by_reason() == {"vendor_down:openai": 3}
    assert not report.counts().all_failed and report.counts().failed == 0
    assert rows(owner_conn, "SELECT count(*), min(rationale_source) FROM lead_scores") == [(3, "template")]
