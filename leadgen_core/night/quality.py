"""Data-quality probes of a tenant-night, read by the asset checks.

Each probe asks for something the database does not already enforce: a constraint makes a
duplicate target impossible, so checking for one proves nothing, while an empty target set with
eligible candidates, a bucket that disagrees with its score, a suppressed address among the
night's contacts or an address paid for twice within the verification TTL are real anomalies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from leadgen_core.night.targets import ELIGIBLE_CANDIDATES_SQL
from leadgen_core.suppression import address_suppressed_sql

TARGET_ANOMALY_SQL = f"""
SELECT (SELECT count(*) FROM daily_targets t WHERE t.tenant_id = %(tenant)s AND t.run_date = %(run_date)s),
       (SELECT count(*) {ELIGIBLE_CANDIDATES_SQL}),
       (SELECT count(*) FROM daily_targets p
         WHERE p.tenant_id = %(tenant)s
           AND p.run_date = (SELECT max(run_date) FROM daily_targets
                             WHERE tenant_id = %(tenant)s AND run_date < %(run_date)s))
"""  # noqa: S608 - constant fragments, values bound

SCORE_CONSISTENCY_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE score < 0 OR score > 1 OR score = 'NaN'::float8),
       count(*) FILTER (WHERE bucket <> CASE WHEN score >= %(high)s THEN 'high'
                                             WHEN score >= %(medium)s THEN 'medium' ELSE 'low' END)
FROM lead_scores WHERE tenant_id = %(tenant)s AND run_date = %(run_date)s
"""

NIGHT_ADDRESSES_SQL = """
    SELECT DISTINCT lower(k.email) AS email
    FROM daily_targets t JOIN contacts k ON k.company_id = t.company_id
    WHERE t.tenant_id = %(tenant)s AND t.run_date = %(run_date)s AND k.email IS NOT NULL
    UNION
    SELECT le.email
    FROM daily_targets t JOIN lead_emails le ON le.company_id = t.company_id
    WHERE t.tenant_id = %(tenant)s AND t.run_date = %(run_date)s
"""

CONTACT_HYGIENE_SQL = f"""
SELECT count(*), count(*) FILTER (WHERE {address_suppressed_sql("a.email")})
FROM ({NIGHT_ADDRESSES_SQL}) a
"""  # noqa: S608 - constant fragments, values bound

# A contact of a target whose address no evidence ties to that company (lead_emails, sql/014).
UNEVIDENCED_SQL = """
SELECT count(*)
FROM daily_targets t JOIN contacts k ON k.company_id = t.company_id
WHERE t.tenant_id = %(tenant)s AND t.run_date = %(run_date)s AND k.email IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM lead_emails le WHERE le.email = lower(k.email) AND le.company_id = k.company_id)
"""

# leadgen_verifications_within (sql/040) reads the verification log as its owner: the app role
# has no grant on the log itself.
REPEAT_VERIFICATION_SQL = f"""
SELECT count(*) FROM leadgen_verifications_within(
    ARRAY(SELECT email FROM ({NIGHT_ADDRESSES_SQL}) a), %(ttl_days)s)
WHERE verifications > 1
"""  # noqa: S608 - constant fragments, values bound


@dataclass(frozen=True)
class TargetAnomalies:
    targets: int
    eligible: int
    previous: int  # the tenant's last earlier night's target count (0: no earlier night)

    @property
    def empty_with_candidates(self) -> bool:
        return self.targets == 0 and self.eligible > 0

    @property
    def swing(self) -> float | None:
        """Relative change from the previous night; None with no previous night."""
        if self.previous == 0:
            return None
        return (self.targets - self.previous) / self.previous


@dataclass(frozen=True)
class ScoreConsistency:
    scores: int
    out_of_range: int
    wrong_bucket: int


@dataclass(frozen=True)
class ContactHygiene:
    addresses: int
    suppressed: int
    verified_twice: int
    without_evidence: int


def target_anomalies(conn: psycopg.Connection, *, tenant_id: str, run_date: date) -> TargetAnomalies:
    row = conn.execute(TARGET_ANOMALY_SQL, {"tenant": tenant_id, "run_date": run_date}).fetchone()
    assert row is not None
    return TargetAnomalies(int(row[0]), int(row[1]), int(row[2]))


def score_consistency(
    conn: psycopg.Connection, *, tenant_id: str, run_date: date, high: float, medium: float
) -> ScoreConsistency:
    params = {"tenant": tenant_id, "run_date": run_date, "high": high, "medium": medium}
    row = conn.execute(SCORE_CONSISTENCY_SQL, params).fetchone()
    assert row is not None
    return ScoreConsistency(int(row[0]), int(row[1]), int(row[2]))


def contact_hygiene(conn: psycopg.Connection, *, tenant_id: str, run_date: date, ttl_days: int) -> ContactHygiene:
    params = {"tenant": tenant_id, "run_date": run_date, "ttl_days": ttl_days}
    row = conn.execute(CONTACT_HYGIENE_SQL, params).fetchone()
    twice = conn.execute(REPEAT_VERIFICATION_SQL, params).fetchone()
    bare = conn.execute(UNEVIDENCED_SQL, params).fetchone()
    assert row is not None
    assert twice is not None
    assert bare is not None
    return ContactHygiene(int(row[0]), int(row[1]), int(twice[0]), int(bare[0]))
