"""Retention: what the daily purge clears and deletes, and everything it must leave alone.

Real: Postgres (rows seeded as the owner with ages relative to the server clock; the purge runs as
the application role), the retention job executed by Dagster in process, its schedule definition.
Nothing is simulated.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import Database
from leadgen_core.leads.retention import RetentionResult, purge
from leadgen_dagster.retention import RETENTION_CRON, retention_job, retention_schedule
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import resources

RETENTION_DAYS = 180
TTL_DAYS = 90


def seed(owner: psycopg.Connection, today: date) -> dict[str, int]:
    """Old and recent rows of each kind the purge looks at, plus tenant data it must not touch."""
    ids = {}
    for label in ("old", "edge", "recent"):
        ids[label] = owner.execute(
            "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
            "VALUES (%s, %s, '\\x00', %s, %s) RETURNING company_id",
            (f"U-{label}", label, today, today),
        ).fetchone()[0]  # type: ignore[index]
    ages = {"old": RETENTION_DAYS + 1, "edge": RETENTION_DAYS, "recent": 3}
    for label, age in ages.items():
        day = today - timedelta(days=age)
        owner.execute(
            "INSERT INTO company_web_snapshots (company_id, crawled_on, status, emails, text_chars, corpus) "
            "VALUES (%s, %s, 'ok', '{a@x.example}', 900, 'the page text')",
            (ids[label], day),
        )
        owner.execute(
            "INSERT INTO company_extractions (company_id, extracted_on, facts, summary) VALUES (%s, %s, %s, 'sum')",
            (ids[label], day, Jsonb({"description": "kept"})),
        )
    owner.execute(
        "INSERT INTO email_verification_cache (email, status, verified_at) VALUES "
        "('stale@x.example', 'valid', now() - make_interval(days => %(ttl)s + 1)), "
        "('fresh@x.example', 'valid', now() - make_interval(days => %(ttl)s - 1))",
        {"ttl": TTL_DAYS},
    )
    owner.execute(
        "INSERT INTO vendor_response_cache (vendor, fingerprint, response, expires_at) VALUES "
        "('openai', 'expired', '{}', now() - interval '1 minute'), ('openai', 'live', '{}', now() + interval '1 day')"
    )
    add_tenant(owner, "acme")
    owner.execute(
        "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
        "rationale_source) VALUES ('acme', %s, %s, 0.5, 'medium', '{}', 'r', 'template')",
        (today - timedelta(days=400), ids["old"]),
    )
    return ids


def q(owner: psycopg.Connection, sql: str, *params: object) -> list[tuple]:
    return owner.execute(sql, params).fetchall()


def run_purge(db: Database, now: datetime) -> RetentionResult:
    with db.global_transaction() as conn:
        return purge(conn, now=now, retention_days=RETENTION_DAYS, verify_ttl_days=TTL_DAYS)


def test_purge_clears_what_is_due_and_nothing_else(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    ids = seed(owner_conn, today_sg(now))
    result = run_purge(app_db, now)
    assert result == RetentionResult(corpora_cleared=1, summaries_cleared=1, verifications_deleted=1,
                                     responses_deleted=1)  # fmt: skip
    corpora = dict(q(owner_conn, "SELECT company_id, corpus FROM company_web_snapshots"))
    assert corpora == {ids["old"]: None, ids["edge"]: "the page text", ids["recent"]: "the page text"}
    summaries = dict(q(owner_conn, "SELECT company_id, summary FROM company_extractions"))
    assert summaries == {ids["old"]: None, ids["edge"]: "sum", ids["recent"]: "sum"}
    # the derived signals stay: scores remain explainable
    assert q(owner_conn, "SELECT status, emails, text_chars FROM company_web_snapshots WHERE company_id = %s",
             ids["old"]) == [("ok", ["a@x.example"], 900)]  # fmt: skip
    assert q(owner_conn, "SELECT facts FROM company_extractions WHERE company_id = %s", ids["old"]) == [
        ({"description": "kept"},)
    ]
    assert q(owner_conn, "SELECT email FROM email_verification_cache") == [("fresh@x.example",)]
    assert q(owner_conn, "SELECT fingerprint FROM vendor_response_cache") == [("live",)]
    assert q(owner_conn, "SELECT count(*) FROM lead_scores") == [(1,)]  # tenant data is never purged
    assert q(owner_conn, "SELECT count(*) FROM companies") == [(3,)]
    assert run_purge(app_db, now) == RetentionResult(0, 0, 0, 0)  # nothing left to do


def test_retention_days_are_singapore_days(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    # 03:30 SGT on 2 March is 19:30 UTC on 1 March: the cutoff counts from 2 March.
    now = datetime(2026, 3, 1, 19, 30, tzinfo=UTC)
    assert today_sg(now) == date(2026, 3, 2)
    ids = seed(owner_conn, date(2026, 3, 2))
    assert run_purge(app_db, now).corpora_cleared == 1
    corpora = dict(q(owner_conn, "SELECT company_id, corpus FROM company_web_snapshots"))
    assert corpora == {ids["old"]: None, ids["edge"]: "the page text", ids["recent"]: "the page text"}


def test_purge_refuses_nonsense_arguments(app_db: Database) -> None:
    with app_db.global_transaction() as conn:
        with pytest.raises(ValueError, match="timezone"):
            purge(conn, now=datetime(2026, 3, 2), retention_days=1, verify_ttl_days=1)
        with pytest.raises(ValueError, match="at least 1"):
            purge(conn, now=datetime.now(UTC), retention_days=0, verify_ttl_days=1)


def test_retention_job_uses_the_settings(clean_db: DbHandle, owner_conn, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    ids = seed(owner_conn, today_sg(now))
    monkeypatch.setenv("RETENTION_DAYS", "2")  # now the 3-day-old snapshot is due too
    monkeypatch.setenv("EMAIL_VERIFY_TTL_DAYS", str(TTL_DAYS))
    with dg.instance_for_test() as instance:
        result = retention_job.execute_in_process(resources=resources(clean_db.app_dsn), instance=instance)
    assert result.success
    assert result.output_for_node("purge_expired_data") == {
        "corpora_cleared": 3, "summaries_cleared": 3, "verifications_deleted": 1, "responses_deleted": 1,
    }  # fmt: skip
    assert q(owner_conn, "SELECT count(*) FROM company_web_snapshots WHERE corpus IS NOT NULL") == [(0,)]
    assert q(owner_conn, "SELECT company_id FROM companies ORDER BY 1") == [(i,) for i in sorted(ids.values())]


def test_retention_schedule() -> None:
    assert retention_schedule.cron_schedule == RETENTION_CRON == "30 3 * * *"
    assert retention_schedule.execution_timezone == "Asia/Singapore"
    assert retention_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert retention_schedule.job_name == "retention_job"
