"""Admin commands run as the owner, and each one stays inside the tenant named by --tenant.

The owner may be a superuser (the embedded server's default, and this suite's), which row-level
security does not bind, so each command's SQL must filter by tenant itself. Real: Postgres, the
`leadgen` CLI through click's runner, as the owner. Nothing simulated. demo-beta's rows exist in
every table touched; demo-alpha's commands must neither show nor change them.
"""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg.types.json import Jsonb

from leadgen_dagster.cli import main
from tests.conftest import DbHandle, add_tenant

D = date(2026, 1, 5)
ALPHA, BETA = "demo-alpha", "demo-beta"
BETA_RULES = {"industries": ["beta-only-industry"], "employee_range": {"min": 7, "max": 77}}


@pytest.fixture
def cli(clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def beta_job(owner_conn: psycopg.Connection) -> int:
    """Both tenants, with demo-beta's rows in every table an admin command reads; beta's failed job."""
    add_tenant(owner_conn, ALPHA, rules={"industries": ["technology"]})
    add_tenant(owner_conn, BETA, rules=BETA_RULES)
    company = owner_conn.execute(
        "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
        "VALUES ('201900001A', 'Beta Secret Co', '\\x00', %s, %s) RETURNING company_id",
        (D, D),
    ).fetchone()[0]
    owner_conn.execute(
        "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
        "rationale_source) VALUES (%s, %s, %s, 0.9, 'high', %s, 'beta rationale', 'template')",
        (BETA, D, company, Jsonb({})),
    )
    owner_conn.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, 'x@beta.example', 'email')",
                       (BETA,))  # fmt: skip
    owner_conn.execute("INSERT INTO tenant_budgets (tenant_id, vendor, daily_cap) VALUES (%s, 'lusha', 4242)", (BETA,))
    owner_conn.execute("INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units, calls) "
                       "VALUES (%s, %s, 'lusha', 3131, 7)", (BETA, D))  # fmt: skip
    row = owner_conn.execute(
        "INSERT INTO background_jobs (tenant_id, job_type, status, error, params) "
        "VALUES (%s, 'staging_upsert', 'error', 'beta failure text', %s) RETURNING job_id",
        (BETA, Jsonb({"terms": ["beta"]})),
    ).fetchone()
    return int(row[0])


def test_jobs_status_and_retry_stay_in_the_tenant(cli, beta_job: int, owner_conn: psycopg.Connection) -> None:  # type: ignore[no-untyped-def]
    r = cli("jobs", "status", str(beta_job), "--tenant", ALPHA)
    assert r.exit_code == 2 and f"no background job {beta_job}" in r.output, r.output
    assert "beta failure text" not in r.output
    r = cli("jobs", "retry", str(beta_job), "--tenant", ALPHA)
    assert r.exit_code == 2 and f"no background job {beta_job}" in r.output, r.output
    assert owner_conn.execute("SELECT status FROM background_jobs").fetchall() == [("error",)]
    # the owning tenant still can, and so can the lookup that finds the owner
    r = cli("jobs", "status", str(beta_job), "--tenant", BETA)
    assert r.exit_code == 0 and f"tenant {BETA}" in r.output and "beta failure text" in r.output, r.output
    r = cli("jobs", "retry", str(beta_job), "--tenant", BETA)
    assert r.exit_code == 0, r.output
    assert owner_conn.execute("SELECT status FROM background_jobs").fetchall() == [("queued",)]
    r = cli("jobs", "status", str(beta_job))
    assert r.exit_code == 0 and f"tenant {BETA}" in r.output


def test_every_tenant_command_shows_nothing_of_another_tenant(cli, beta_job: int) -> None:  # type: ignore[no-untyped-def]
    outputs = {
        "export": cli("export", "scores", "--tenant", ALPHA, "--format", "json"),
        "export-day": cli("export", "scores", "--tenant", ALPHA, "--date", D.isoformat()),
        "suppress": cli("suppress", "list", "--tenant", ALPHA),
        "budget": cli("budget", "show", "--tenant", ALPHA, "--date", D.isoformat()),
        "icp": cli("icp", "show", "--tenant", ALPHA),
    }
    for name, r in outputs.items():
        assert r.exit_code == 0, (name, r.output)
        for beta_mark in ("Beta Secret Co", "beta rationale", "x@beta.example", "4242", "3131", "beta-only-industry"):
            assert beta_mark not in r.output, (name, beta_mark, r.output)


def test_suppress_remove_cannot_reach_another_tenant(cli, beta_job: int, owner_conn: psycopg.Connection) -> None:  # type: ignore[no-untyped-def]
    r = cli("suppress", "remove", "--tenant", ALPHA, "x@beta.example")
    assert owner_conn.execute("SELECT tenant_id, value FROM suppression_emails").fetchall() == [
        (BETA, "x@beta.example")
    ], r.output
