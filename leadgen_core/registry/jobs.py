"""Background staging→companies upserts (seed 003), queued per tenant and run by Dagster.

A job names industry terms; its run resolves them to SSIC codes, picks at most
UPSERT_MAX_PER_JOB matching staging rows and upserts them in batches of STAGING_BATCH_SIZE,
updating `processed` after each batch so `leadgen jobs status` shows progress. A job whose run
died while it was `running` is marked `error` by the sensor and can be retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core.errors import ConfigError
from leadgen_core.icp.resolve import resolve_industries
from leadgen_core.icp.rules import IcpRules
from leadgen_core.registry.upsert import upsert_uens

JOB_TYPE = "staging_upsert"

ENQUEUE_SQL = """
INSERT INTO background_jobs (tenant_id, job_type, status, params) VALUES (%s, %s, 'queued', %s) RETURNING job_id
"""
STATUS_SQL = """
SELECT job_id, tenant_id, job_type, status, processed, total, error, attempts, dagster_run_id,
       created_at, started_at, ended_at, params
FROM background_jobs WHERE job_id = %s AND tenant_id = %s
"""
QUEUED_SQL = "SELECT job_id, attempts FROM background_jobs WHERE status = 'queued' ORDER BY job_id LIMIT %s"
RUNNING_SQL = "SELECT job_id, dagster_run_id FROM background_jobs WHERE status = 'running'"
CLAIM_SQL = """
UPDATE background_jobs SET status = 'running', started_at = now(), ended_at = NULL, error = NULL,
    processed = 0, attempts = attempts + 1, dagster_run_id = %s
WHERE job_id = %s AND status = 'queued' RETURNING params
"""
PROGRESS_SQL = "UPDATE background_jobs SET processed = %s, total = %s WHERE job_id = %s"
FINISH_SQL = "UPDATE background_jobs SET status = %s, error = %s, ended_at = now() WHERE job_id = %s"
# The tenant is in the WHERE, not only in row-level security: the admin CLI runs these as the
# owner, which may be a superuser (the embedded default) that RLS does not bind.
RETRY_SQL = """
UPDATE background_jobs SET status = 'queued', error = NULL WHERE job_id = %s AND tenant_id = %s AND status = 'error'
"""
OWNS_JOB_SQL = "SELECT 1 FROM background_jobs WHERE job_id = %s AND tenant_id = %s"
MATCHING_UENS_SQL = """
SELECT uen FROM staging_acra_companies
WHERE primary_ssic_code = ANY(%(codes)s) OR secondary_ssic_code = ANY(%(codes)s)
ORDER BY snapshot_date DESC, uen
LIMIT %(cap)s
"""


@dataclass(frozen=True)
class JobStatus:
    job_id: int
    tenant_id: str
    job_type: str
    status: str
    processed: int
    total: int
    error: str | None
    attempts: int
    dagster_run_id: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    params: dict[str, Any]


def parse_terms(raw: str) -> list[str]:
    terms = [t.strip() for t in raw.split(",") if t.strip()]
    if not terms:
        raise ConfigError('--terms must name at least one industry, e.g. "manufacturing,logistics"')
    if len(terms) > 20 or any(len(t) > 100 for t in terms):
        raise ConfigError("--terms takes at most 20 terms of at most 100 characters")
    return terms


def enqueue_upsert(conn: psycopg.Connection, *, tenant_id: str, terms: list[str]) -> int:
    row = conn.execute(ENQUEUE_SQL, (tenant_id, JOB_TYPE, Jsonb({"terms": terms}))).fetchone()
    assert row is not None
    return int(row[0])


def owns_job(conn: psycopg.Connection, job_id: int, *, tenant_id: str) -> bool:
    """Whether JOB_ID is TENANT_ID's job."""
    return conn.execute(OWNS_JOB_SQL, (job_id, tenant_id)).fetchone() is not None


def job_status(conn: psycopg.Connection, job_id: int, *, tenant_id: str) -> JobStatus:
    row = conn.execute(STATUS_SQL, (job_id, tenant_id)).fetchone()
    if row is None:
        raise ConfigError(f"no background job {job_id} for tenant {tenant_id}")
    return JobStatus(*row)


def queued_jobs(conn: psycopg.Connection, *, limit: int = 20) -> list[tuple[int, int]]:
    return [(int(r[0]), int(r[1])) for r in conn.execute(QUEUED_SQL, (limit,)).fetchall()]


def running_jobs(conn: psycopg.Connection) -> list[tuple[int, str | None]]:
    return [(int(r[0]), r[1]) for r in conn.execute(RUNNING_SQL).fetchall()]


def mark_failed(conn: psycopg.Connection, job_id: int, error: str) -> None:
    conn.execute(FINISH_SQL, ("error", error[:2000], job_id))


def retry(conn: psycopg.Connection, job_id: int, *, tenant_id: str) -> bool:
    return conn.execute(RETRY_SQL, (job_id, tenant_id)).rowcount == 1


def run_staging_upsert(
    tenant_conn: Callable[[], Any],
    global_conn: Callable[[], Any],
    *,
    job_id: int,
    run_id: str,
    max_rows: int,
    batch_size: int,
    today: date,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Run a queued job to completion; returns the rows upserted. Raises after marking the job failed."""
    with tenant_conn() as conn:
        row = conn.execute(CLAIM_SQL, (run_id, job_id)).fetchone()
    if row is None:
        raise ConfigError(f"background job {job_id} is not queued (already running or finished)")
    terms = list(row[0].get("terms", []))
    processed = 0
    try:
        with global_conn() as conn:
            resolved = resolve_industries(conn, IcpRules(industries=terms))
            uens = [r[0] for r in conn.execute(MATCHING_UENS_SQL, {"codes": list(resolved.codes), "cap": max_rows})]
        total = len(uens)
        for start in range(0, total, batch_size):
            batch = uens[start : start + batch_size]
            with global_conn() as conn:
                upsert_uens(conn, uens=batch, seen_on=today)
            processed += len(batch)
            with tenant_conn() as conn:
                conn.execute(PROGRESS_SQL, (processed, total, job_id))
            if progress:
                progress(processed, total)
        with tenant_conn() as conn:
            conn.execute(PROGRESS_SQL, (processed, total, job_id))
            conn.execute(FINISH_SQL, ("done", None, job_id))
        return processed
    except Exception as exc:
        with tenant_conn() as conn:
            mark_failed(conn, job_id, f"{type(exc).__name__}: {exc}")
        raise
