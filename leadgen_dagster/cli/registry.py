"""Registry and background-job commands: `leadgen acra ...` and `leadgen jobs ...`."""

from __future__ import annotations

from pathlib import Path

import click
import psycopg

from leadgen_core.clock import today_sg
from leadgen_dagster.cli.common import friendly, owner_conn, resolve_tenant, tenant_conn
from leadgen_dagster.cli.params import FiniteFloatRange


@click.group()
def acra() -> None:
    """Load ACRA CSV downloads; generate a synthetic registry."""


@acra.command("synth")
@click.option("--rows", default=10_000, show_default=True, type=click.IntRange(1, 5_000_000))
@click.option("--seed", default=7, show_default=True)
@click.option("--malformed-rate", default=0.01, show_default=True, type=FiniteFloatRange(0, 1))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True)
@friendly
def acra_synth(rows: int, seed: int, malformed_rate: float, output: Path) -> None:
    """Write a synthetic registry CSV in ACRA's download format (real SSIC codes, "na", some malformed rows)."""
    from leadgen_core.acra.synth import write_csv

    written = write_csv(output, rows, seed=seed, malformed_rate=malformed_rate)
    click.echo(f"wrote {written} rows to {output}")


@acra.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Snapshot date (default today SGT)."
)
@click.option("--upsert/--no-upsert", default=True, show_default=True, help="Also upsert companies.")
@friendly
def acra_load(path: Path, day: object, upsert: bool) -> None:
    """Bulk-load an ACRA CSV into staging; malformed rows go to staging_acra_rejects with a reason."""
    from leadgen_core.acra.csv_source import iter_csv
    from leadgen_core.registry.load import load_rows
    from leadgen_core.registry.upsert import upsert_companies

    snapshot = day.date() if day is not None else today_sg()  # type: ignore[attr-defined]

    def progress(seen: int, rejected: int) -> None:
        click.echo(f"  {seen:>10,} rows read, {rejected:,} quarantined", err=True)

    counts = load_rows(iter_csv(path), conn=owner_conn, snapshot_date=snapshot, source=f"csv:{path.name}",
                       progress=progress)  # fmt: skip
    click.echo(f"staged {counts.staged:,} rows, quarantined {counts.rejected:,} ({dict(counts.reasons)}) "
               f"in {counts.seconds:.1f}s")  # fmt: skip
    if upsert:
        with owner_conn() as conn:
            up = upsert_companies(conn, snapshot_date=snapshot)
        click.echo(f"companies: {up.inserted:,} new, {up.updated:,} changed, {up.unchanged:,} unchanged")


@click.group()
def jobs() -> None:
    """Background staging→companies upserts (run by the background_jobs_sensor)."""


@jobs.command("enqueue-upsert")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option("--terms", required=True, help='Comma-separated industry terms, e.g. "manufacturing,logistics".')
@friendly
def jobs_enqueue(tenant: str, terms: str) -> None:
    """Queue an upsert of the staging rows matching TERMS (capped by UPSERT_MAX_PER_JOB)."""
    from leadgen_core.registry.jobs import enqueue_upsert, parse_terms

    parsed = parse_terms(terms)
    with tenant_conn(tenant) as (conn, tid):
        job_id = enqueue_upsert(conn, tenant_id=tid, terms=parsed)
    click.echo(f"queued job {job_id} for {tid}: {', '.join(parsed)}")


def _job_tenant(conn: psycopg.Connection, job_id: int, tenant: str | None) -> str:
    """The tenant whose job JOB_ID is: TENANT's (id or name) when given, else found among all tenants.
    Leaves the transaction scoped to that tenant (background_jobs is tenant-owned, under RLS)."""
    from leadgen_core.db.pool import set_tenant
    from leadgen_core.errors import ConfigError
    from leadgen_core.registry.jobs import owns_job
    from leadgen_core.tenants import directory

    candidates = [resolve_tenant(conn, tenant)] if tenant else [t.tenant_id for t in directory(conn)]
    for tid in candidates:
        set_tenant(conn, tid)
        if owns_job(conn, job_id, tenant_id=tid):  # tenant in the SQL: a superuser owner ignores RLS
            return tid
    raise ConfigError(f"no background job {job_id}" + (f" for tenant {candidates[0]}" if tenant else ""))


@jobs.command("status")
@click.argument("job_id", type=int)
@click.option("--tenant", default=None, help="Tenant id or name (default: whichever tenant owns the job).")
@friendly
def jobs_status(job_id: int, tenant: str | None) -> None:
    """Show a job's status, progress and error."""
    from leadgen_core.registry.jobs import job_status

    with owner_conn() as conn:
        tid = _job_tenant(conn, job_id, tenant)
        st = job_status(conn, job_id, tenant_id=tid)
    click.echo(f"job {st.job_id} ({st.job_type}, tenant {st.tenant_id}): {st.status}, "
               f"{st.processed}/{st.total} processed, attempts {st.attempts}")  # fmt: skip
    if st.error:
        click.echo(f"error: {st.error}")


@jobs.command("retry")
@click.argument("job_id", type=int)
@click.option("--tenant", default=None, help="Tenant id or name (default: whichever tenant owns the job).")
@friendly
def jobs_retry(job_id: int, tenant: str | None) -> None:
    """Queue a failed job again."""
    from leadgen_core.errors import ConfigError
    from leadgen_core.registry.jobs import retry

    with owner_conn() as conn:
        tid = _job_tenant(conn, job_id, tenant)
        if not retry(conn, job_id, tenant_id=tid):
            raise ConfigError(f"job {job_id} is not in state 'error' for tenant {tid}")
    click.echo(f"job {job_id} queued again")
