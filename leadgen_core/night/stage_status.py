"""Per-company stage status: what makes every stage resumable.

A stage asks for the targets it has not finished (`pending`), works them, and records each
outcome (`record`). `done`, `degraded` and `skipped` are terminal; `failed` is retried on the
next materialisation (attempts count up). Re-materialising a partition therefore redoes only
what did not finish, and pays for nothing twice. A dry run's pending list is the manifest it
forecasts (`targets.dry_run_targets`), which it never stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core.night.targets import dry_run_targets

Status = Literal["done", "degraded", "failed", "skipped"]
TERMINAL = ("done", "degraded", "skipped")

PENDING_SQL = """
SELECT t.company_id FROM daily_targets t
WHERE t.tenant_id = %(tenant)s AND t.run_date = %(day)s
  AND NOT EXISTS (
      SELECT 1 FROM company_stage_status s
      WHERE s.tenant_id = t.tenant_id AND s.run_date = t.run_date AND s.company_id = t.company_id
        AND s.stage = %(stage)s AND s.status = ANY(%(terminal)s)
  )
ORDER BY t.priority
"""

FINISHED_SQL = """
SELECT company_id FROM company_stage_status
WHERE tenant_id = %s AND run_date = %s AND stage = %s AND company_id = ANY(%s) AND status = ANY(%s)
"""

RECORD_SQL = """
INSERT INTO company_stage_status (tenant_id, run_date, company_id, stage, status, reason, last_error, detail)
VALUES (%(tenant)s, %(day)s, %(company)s, %(stage)s, %(status)s, %(reason)s, %(error)s, %(detail)s)
ON CONFLICT (tenant_id, run_date, stage, company_id) DO UPDATE SET
    status = EXCLUDED.status, reason = EXCLUDED.reason, last_error = EXCLUDED.last_error,
    detail = EXCLUDED.detail, attempts = company_stage_status.attempts + 1, updated_at = now()
"""

SUMMARY_SQL = """
SELECT status, count(*) FROM company_stage_status
WHERE tenant_id = %s AND run_date = %s AND stage = %s GROUP BY status
"""

REASONS_SQL = """
SELECT coalesce(split_part(reason, ':', 1), '-'), count(*) FROM company_stage_status
WHERE tenant_id = %s AND run_date = %s AND stage = %s AND status = 'degraded' GROUP BY 1
"""


@dataclass(frozen=True)
class Outcome:
    company_id: int
    status: Status
    reason: str | None = None
    error: str | None = None
    detail: dict[str, Any] | None = None


def pending(
    conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str, dry_run_cap: int | None = None
) -> list[int]:
    """The stage's unfinished targets; DRY_RUN_CAP (the default target cap) set: a dry run's."""
    if dry_run_cap is not None:
        ids = dry_run_targets(conn, tenant_id=tenant_id, run_date=day, default_cap=dry_run_cap)
        finished = set(_finished(conn, tenant_id=tenant_id, day=day, stage=stage, ids=ids))
        return [i for i in ids if i not in finished]
    rows = conn.execute(
        PENDING_SQL, {"tenant": tenant_id, "day": day, "stage": stage, "terminal": list(TERMINAL)}
    ).fetchall()
    return [int(r[0]) for r in rows]


def _finished(conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str, ids: list[int]) -> list[int]:
    rows = conn.execute(FINISHED_SQL, (tenant_id, day, stage, ids, list(TERMINAL))).fetchall()
    return [int(r[0]) for r in rows]


def _record_params(tenant_id: str, day: date, stage: str, outcome: Outcome) -> dict[str, Any]:
    return {
        "tenant": tenant_id, "day": day, "company": outcome.company_id, "stage": stage,
        "status": outcome.status, "reason": outcome.reason,
        "error": outcome.error[:2000] if outcome.error else None,
        "detail": Jsonb(outcome.detail) if outcome.detail is not None else None,
    }  # fmt: skip


def record(conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str, outcome: Outcome) -> None:
    conn.execute(RECORD_SQL, _record_params(tenant_id, day, stage, outcome))


def record_many(
    conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str, outcomes: Sequence[Outcome]
) -> None:
    """`record` for each of OUTCOMES (one per company), pipelined: one round trip for all of them."""
    if outcomes:
        conn.cursor().executemany(RECORD_SQL, [_record_params(tenant_id, day, stage, o) for o in outcomes])


def summary(conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str) -> dict[str, int]:
    return {str(s): int(n) for s, n in conn.execute(SUMMARY_SQL, (tenant_id, day, stage)).fetchall()}


def degraded_reasons(conn: psycopg.Connection, *, tenant_id: str, day: date, stage: str) -> dict[str, int]:
    return {str(r): int(n) for r, n in conn.execute(REASONS_SQL, (tenant_id, day, stage)).fetchall()}
