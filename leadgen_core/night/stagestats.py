"""Per-stage timings and outcome counts of a tenant-night, kept in `run_stage_stats`.

The SLA check reads them: a night's wall clock runs from its first stage's start to its last
stage's end. Rows carry the night's *root* run id (the first run of a chain of re-executions):
a stage that starts again within the same chain (a step retry, a re-execution from failure) keeps
its first start, so the SLA measures the night, not the last attempt; a stage started by a new
night of the same date (re-materialising an old partition next week) starts a new clock, so an
old date's re-run is not measured from its first run days ago.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import psycopg

START_SQL = """
INSERT INTO run_stage_stats (tenant_id, run_date, stage, dagster_run_id, started_at)
VALUES (%s, %s, %s, %s, now())
ON CONFLICT (tenant_id, run_date, stage) DO UPDATE SET
    started_at = CASE WHEN run_stage_stats.dagster_run_id IS NOT DISTINCT FROM EXCLUDED.dagster_run_id
                      THEN run_stage_stats.started_at ELSE EXCLUDED.started_at END,
    dagster_run_id = EXCLUDED.dagster_run_id,
    finished_at = NULL
"""

FINISH_SQL = """
UPDATE run_stage_stats SET finished_at = now(), items = %s, done = %s, degraded = %s, failed = %s
WHERE tenant_id = %s AND run_date = %s AND stage = %s
"""

NIGHT_SQL = """
SELECT stage, started_at, finished_at, items, done, degraded, failed
FROM run_stage_stats
WHERE tenant_id = %(tenant)s AND run_date = %(day)s
  AND (%(root)s::text IS NULL OR dagster_run_id = %(root)s)
ORDER BY started_at
"""


@dataclass(frozen=True)
class StageCounts:
    items: int = 0
    done: int = 0
    degraded: int = 0
    failed: int = 0

    @property
    def all_failed(self) -> bool:
        """Every item of the stage failed: the stage itself failed, whatever it returned.

        One company's surprise is an item's `failed`; all of them failing (weights that broke every
        score, a vendor that answers nothing but errors) is the stage's failure, and must not pass
        for a successful materialisation.
        """
        return self.items > 0 and self.failed == self.items


@dataclass(frozen=True)
class StageStat:
    stage: str
    started_at: datetime
    finished_at: datetime | None
    counts: StageCounts

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def stage_started(
    conn: psycopg.Connection, *, tenant_id: str, run_date: date, stage: str, root_run_id: str | None
) -> None:
    """Record STAGE's start for the night whose first run is ROOT_RUN_ID."""
    conn.execute(START_SQL, (tenant_id, run_date, stage, root_run_id))


def stage_finished(
    conn: psycopg.Connection, *, tenant_id: str, run_date: date, stage: str, counts: StageCounts
) -> None:
    conn.execute(FINISH_SQL, (counts.items, counts.done, counts.degraded, counts.failed, tenant_id, run_date, stage))


def night_stats(
    conn: psycopg.Connection, *, tenant_id: str, run_date: date, root_run_id: str | None = None
) -> list[StageStat]:
    """The stages of the (tenant, date) night; with ROOT_RUN_ID, only those that night's runs ran."""
    rows = conn.execute(NIGHT_SQL, {"tenant": tenant_id, "day": run_date, "root": root_run_id}).fetchall()
    return [StageStat(r[0], r[1], r[2], StageCounts(r[3], r[4], r[5], r[6])) for r in rows]


def night_wall_seconds(stats: list[StageStat], *, clock_start: datetime | None = None) -> float | None:
    """CLOCK_START (a scheduled night's 01:00), else the first stage's start, to the last end;
    None while any stage is unfinished or none ran."""
    if not stats or any(s.finished_at is None for s in stats):
        return None
    start = clock_start or min(s.started_at for s in stats)
    end = max(s.finished_at for s in stats if s.finished_at is not None)
    return (end - start).total_seconds()
