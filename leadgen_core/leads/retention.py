"""Retention: keep no text and no verification longer than the settings allow.

* `company_web_snapshots.corpus` (the crawled page text) and `company_extractions.summary` older
  than RETENTION_DAYS are cleared; the derived signals (status, counts, facts) stay, so scores
  can still be explained.
* `email_verification_cache` rows older than EMAIL_VERIFY_TTL_DAYS are deleted, so the address is
  verified again the next time it matters (mailboxes close and domains lapse).
* `vendor_response_cache` rows past their `expires_at` are deleted.

Everything runs in the caller's (global) transaction; each statement touches only what is due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from leadgen_core.clock import sg_date

CORPUS_SQL = """
UPDATE company_web_snapshots SET corpus = NULL WHERE crawled_on < %s AND corpus IS NOT NULL
"""
SUMMARY_SQL = """
UPDATE company_extractions SET summary = NULL WHERE extracted_on < %s AND summary IS NOT NULL
"""
VERIFICATIONS_SQL = "DELETE FROM email_verification_cache WHERE verified_at < %s"
RESPONSES_SQL = "DELETE FROM vendor_response_cache WHERE expires_at <= %s"


@dataclass(frozen=True)
class RetentionResult:
    corpora_cleared: int
    summaries_cleared: int
    verifications_deleted: int
    responses_deleted: int

    def as_dict(self) -> dict[str, int]:
        return {
            "corpora_cleared": self.corpora_cleared,
            "summaries_cleared": self.summaries_cleared,
            "verifications_deleted": self.verifications_deleted,
            "responses_deleted": self.responses_deleted,
        }


def purge(
    conn: psycopg.Connection,
    *,
    now: datetime,
    retention_days: int,
    verify_ttl_days: int,
) -> RetentionResult:
    """Apply the retention rules as of NOW (timezone-aware); returns what each rule touched.

    Text is kept for RETENTION_DAYS whole days: a snapshot of day D is cleared once
    D < today - RETENTION_DAYS, today being NOW's Singapore date (the job runs at 03:30 SGT,
    when the UTC date is still yesterday's).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if retention_days < 1 or verify_ttl_days < 1:
        raise ValueError("retention_days and verify_ttl_days must be at least 1")
    cutoff: date = sg_date(now) - timedelta(days=retention_days)
    corpora = conn.execute(CORPUS_SQL, (cutoff,)).rowcount
    summaries = conn.execute(SUMMARY_SQL, (cutoff,)).rowcount
    verifications = conn.execute(VERIFICATIONS_SQL, (now - timedelta(days=verify_ttl_days),)).rowcount
    responses = conn.execute(RESPONSES_SQL, (now,)).rowcount
    return RetentionResult(corpora, summaries, verifications, responses)
