"""Data-quality probes of a tenant-night's target set, used by the asset checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

TARGET_QUALITY_SQL = """
SELECT count(*) AS targets,
       count(*) - count(DISTINCT company_id) AS duplicates,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM icp_candidates ic
           WHERE ic.tenant_id = t.tenant_id AND ic.run_date = t.run_date AND ic.company_id = t.company_id
       )) AS outside_candidates
FROM daily_targets t
WHERE t.tenant_id = %s AND t.run_date = %s
"""


@dataclass(frozen=True)
class TargetQuality:
    targets: int
    duplicates: int
    outside_candidates: int


def target_quality(conn: psycopg.Connection, *, tenant_id: str, run_date: date) -> TargetQuality:
    row = conn.execute(TARGET_QUALITY_SQL, (tenant_id, run_date)).fetchone()
    assert row is not None
    return TargetQuality(int(row[0]), int(row[1]), int(row[2]))
