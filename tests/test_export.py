"""Score exports (keyset pagination, suppression, CSV/JSON) and the operations CLI.

Real: Postgres (scores and suppressions seeded as the owner; exports read as the application role
under RLS, the CLI as the owner scoped to the tenant), the writers, click's runner driving the
real commands. Nothing is simulated: no vendor is involved.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

import click
import psycopg
import pytest
from click.testing import CliRunner, Result

from leadgen_core.db.pool import Database
from leadgen_core.errors import ConfigError
from leadgen_core.leads.export import Cursor, ExportRow, export_scores, write_csv, write_json
from leadgen_dagster.cli import ops
from tests.conftest import DbHandle, add_tenant

DAY = date(2026, 3, 2)
EARLIER = DAY - timedelta(days=1)
TENANT, OTHER = "acme", "globex"
N = 120


def seed_scores(
    owner: psycopg.Connection, *, first: int = 1, n: int = N, tenant: str = TENANT, day: date = DAY
) -> None:
    """N companies with scores full of ties (37 distinct values), so the tie-break is exercised."""
    owner.execute(
        "INSERT INTO companies (uen, name, website_domain, content_hash, first_seen, last_seen) "
        "SELECT 'U' || g, 'Co ' || g, 'co' || g || '.example', '\\x00', %(d)s, %(d)s "
        "FROM generate_series(%(a)s::int, %(b)s::int) g ON CONFLICT (uen) DO NOTHING",
        {"d": day, "a": first, "b": first + n - 1},
    )
    owner.execute(
        "INSERT INTO lead_scores (tenant_id, run_date, company_id, score, bucket, contributions, rationale, "
        "rationale_source) SELECT %(t)s, %(d)s, company_id, ((substr(uen, 2)::int * 7) %% 37) / 40.0, 'medium', "
        "'{\"icp_fit\": 0.1}', 'because', 'template' FROM companies "
        "WHERE substr(uen, 2)::int BETWEEN %(a)s AND %(b)s",
        {"t": tenant, "d": day, "a": first, "b": first + n - 1},
    )


@pytest.fixture
def scores(owner_conn: psycopg.Connection) -> psycopg.Connection:
    add_tenant(owner_conn, TENANT)
    add_tenant(owner_conn, OTHER)
    seed_scores(owner_conn)
    seed_scores(owner_conn, n=40, day=EARLIER)  # the same companies on the night before
    seed_scores(owner_conn, n=30, tenant=OTHER)
    return owner_conn


def expected(owner: psycopg.Connection, day: date | None) -> list[tuple[date, int]]:
    sql = "SELECT run_date, company_id FROM lead_scores WHERE tenant_id = %s AND (%s::date IS NULL OR run_date = %s)"
    order = " ORDER BY score DESC, company_id DESC, run_date DESC"
    return [tuple(r) for r in owner.execute(sql + order, (TENANT, day, day)).fetchall()]


def page_all(db: Database, *, day: date | None, limit: int) -> list[ExportRow]:
    seen: list[ExportRow] = []
    cursor: str | None = None
    while True:
        with db.tenant_transaction(TENANT) as conn:
            rows, cursor = export_scores(conn, tenant_id=TENANT, day=day, after=cursor, limit=limit)
        seen += rows
        if cursor is None:
            return seen


@pytest.mark.parametrize("day", [DAY, None])
def test_pagination_is_complete_ordered_and_tenant_scoped(app_db: Database, scores, day) -> None:  # type: ignore[no-untyped-def]
    seen = page_all(app_db, day=day, limit=17)
    assert [(r.run_date, r.company_id) for r in seen] == expected(scores, day)
    assert len(seen) == (N if day else N + 40)
    assert all(r.uen.startswith("U") and r.contributions == {"icp_fit": 0.1} for r in seen)


def test_pagination_is_stable_while_rows_are_inserted(app_db: Database, scores) -> None:  # type: ignore[no-untyped-def]
    at_start = set(expected(scores, None))
    seen: list[tuple[date, int]] = []
    cursor: str | None = None
    batch = 0
    while True:
        with app_db.tenant_transaction(TENANT) as conn:
            rows, cursor = export_scores(conn, tenant_id=TENANT, day=None, after=cursor, limit=25)
        seen += [(r.run_date, r.company_id) for r in rows]
        if cursor is None:
            break
        # new rows land everywhere in the order: before, at and after the cursor
        seed_scores(scores, first=1000 + batch * 10, n=10)
        batch += 1
    assert batch >= 3 and len(seen) == len(set(seen))
    assert at_start <= set(seen)


def test_suppressed_companies_are_left_out(app_db: Database, scores) -> None:  # type: ignore[no-untyped-def]
    c1, c2, c3 = (scores.execute("SELECT company_id FROM companies WHERE uen = %s", (u,)).fetchone()[0]
                  for u in ("U1", "U2", "U3"))  # fmt: skip
    scores.execute("INSERT INTO lead_emails (email, company_id, source) VALUES ('ann@co2.example', %s, 'crawl'),"
                   " ('info@co3.example', %s, 'crawl'), ('bob@partner.example', %s, 'crawl')", (c2, c3, c3))  # fmt: skip
    scores.execute("INSERT INTO email_verification_cache (email, status) VALUES ('bob@partner.example', 'valid'),"
                   " ('info@co3.example', 'catch-all')")  # fmt: skip
    scores.execute(
        "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%(t)s, 'co1.example', 'domain'),"
        " (%(t)s, 'ann@co2.example', 'email'), (%(t)s, 'partner.example', 'domain')",
        {"t": TENANT},
    )
    seen = {r.company_id: r for r in page_all(app_db, day=DAY, limit=50)}
    assert c1 not in seen and c2 not in seen and len(seen) == N - 2
    assert seen[c3].email == "info@co3.example"  # the valid address is at a suppressed domain


def test_cursor_and_limit_validation(app_db: Database, scores) -> None:  # type: ignore[no-untyped-def]
    token = Cursor(DAY, 0.375, 42).encode()
    assert Cursor.decode(token) == Cursor(DAY, 0.375, 42)
    with app_db.tenant_transaction(TENANT) as conn:
        for bad in ("not-a-cursor", "W10", token[:-3]):
            with pytest.raises(ConfigError, match="invalid cursor"):
                export_scores(conn, tenant_id=TENANT, day=DAY, after=bad, limit=10)
        for limit in (0, 10_001):
            with pytest.raises(ConfigError, match="limit"):
                export_scores(conn, tenant_id=TENANT, day=DAY, after=None, limit=limit)


def test_writers_round_trip_and_defuse_formulas() -> None:
    row = ExportRow(run_date=DAY, company_id=7, uen="U7", name="=HYPERLINK(\"x\")", website=None, score=0.5,
                    bucket="medium", email="a@b.example", rationale="Good, fit", rationale_source="llm",
                    contributions={"icp_fit": 0.5})  # fmt: skip
    out = io.StringIO()
    write_csv([row], out)
    (parsed,) = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert parsed["name"] == '\'=HYPERLINK("x")' and parsed["rationale"] == "Good, fit"
    assert json.loads(parsed["contributions"]) == {"icp_fit": 0.5} and parsed["run_date"] == "2026-03-02"
    out = io.StringIO()
    write_json([row], out)
    assert json.loads(out.getvalue()) == [row.as_json()] and row.as_json()["name"].startswith("=")


# --- the CLI ----------------------------------------------------------------------------------
@click.group()
def root() -> None:
    """The operations groups as the lead registers them under `leadgen`."""


root.add_command(ops.export)
root.add_command(ops.suppress)
root.add_command(ops.budget)


@pytest.fixture
def cli(clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.delenv("OPENAI_DAILY_TOKENS_CAP", raising=False)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(root, list(args), catch_exceptions=False)

    return run


def assert_one_line_error(result: Result, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cli_export_pages_by_name_and_cursor(cli, scores, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = cli("export", "scores", "--tenant", "Acme", "--date", "2026-03-02", "--format", "json", "--limit", "50")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.stdout)
    cursor = first.stderr.split("next cursor: ")[1].split()[0]
    out = tmp_path / "rest.csv"
    rest = cli("export", "scores", "--tenant", "acme", "--date", "2026-03-02", "--after", cursor, "--limit", "500",
               "--output", str(out))  # fmt: skip
    assert rest.exit_code == 0 and "last page" in rest.stderr and rest.stdout == ""
    later = list(csv.DictReader(out.open(encoding="utf-8")))
    ids = [(r["run_date"], int(r["company_id"])) for r in rows] + [(r["run_date"], int(r["company_id"])) for r in later]
    assert ids == [(d.isoformat(), c) for d, c in expected(scores, DAY)]


def test_cli_export_bad_input(cli, scores) -> None:  # type: ignore[no-untyped-def]
    assert_one_line_error(cli("export", "scores", "--tenant", "acme", "--after", "garbage"), "invalid cursor")
    assert_one_line_error(cli("export", "scores", "--tenant", "nobody"), "no tenant")
    assert_one_line_error(cli("export", "scores", "--tenant", "acme", "--limit", "0"), "limit")
    bad_format = cli("export", "scores", "--tenant", "acme", "--format", "xml")
    assert bad_format.exit_code == 2 and "Traceback" not in bad_format.output


def test_cli_suppress_add_list_remove_end_to_end(cli, scores, app_db: Database) -> None:  # type: ignore[no-untyped-def]
    assert cli("suppress", "add", "--tenant", "acme", "CO5.example", "--reason", "asked").exit_code == 0
    assert cli("suppress", "add", "--tenant", "acme", "Ann@Co6.Example").exit_code == 0
    listed = cli("suppress", "list", "--tenant", "Acme")
    assert "domain  co5.example" in listed.stdout and "email   ann@co6.example" in listed.stdout
    assert "asked" in listed.stdout
    assert cli("suppress", "list", "--tenant", "globex").stdout.startswith("no suppressions")
    with app_db.tenant_transaction(TENANT) as conn:
        uens = {r.uen for r in export_scores(conn, tenant_id=TENANT, day=DAY, after=None, limit=500)[0]}
    assert "U5" not in uens and "U6" in uens  # ann@ is not a known email of U6: only the domain rule bites
    assert cli("suppress", "remove", "--tenant", "acme", "co5.example").exit_code == 0
    assert_one_line_error(cli("suppress", "remove", "--tenant", "acme", "co5.example"), "not suppressed")
    assert_one_line_error(cli("suppress", "add", "--tenant", "acme", "not an address"), "neither an email")
    assert_one_line_error(cli("suppress", "add", "--tenant", "acme", "x@y"), "not a valid email")


def test_cli_budget_show(cli, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, TENANT)
    owner_conn.execute("INSERT INTO tenant_budgets VALUES (%s, 'tavily', 50)", (TENANT,))
    owner_conn.execute("INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units, calls) VALUES "
                       "(%(t)s, %(d)s, 'openai', 50000, 12), (%(t)s, %(d)s, 'tavily', 60, 60)",
                       {"t": TENANT, "d": DAY})  # fmt: skip
    # a ZeroBounce batch that timed out: 200 units the vendor may or may not have charged
    owner_conn.execute("INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units, calls, uncertain_units) "
                       "VALUES (%s, %s, 'zerobounce', 40, 41, 200)", (TENANT, DAY))  # fmt: skip
    shown = cli("budget", "show", "--tenant", "acme", "--date", "2026-03-02")
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[0]: line.split() for line in shown.stdout.splitlines()[2:]}
    assert lines["openai"][:5] == ["openai", "50000", "4000000", "12", "1.2"]
    assert lines["tavily"][:4] == ["tavily", "60", "50", "60"] and "OVER" in lines["tavily"]
    assert lines["zerobounce"][:6] == ["zerobounce", "40", "6000", "41", "0.7", "200"]  # used, ..., uncertain
    assert shown.stdout.splitlines()[1].split()[-1] == "uncertain"
    assert lines["lusha"][1] == "0" and lines["lusha"][5] == "0"
    assert_one_line_error(cli("budget", "show", "--tenant", "nope"), "no tenant")
    bad_date = cli("budget", "show", "--tenant", "acme", "--date", "03/02/2026")
    assert bad_date.exit_code == 2 and "Traceback" not in bad_date.output


def test_cli_export_gives_each_company_once_at_its_latest_date_unless_all_dates(cli, scores) -> None:  # type: ignore[no-untyped-def]
    latest = cli("export", "scores", "--tenant", "acme", "--format", "json", "--limit", "1000")
    assert latest.exit_code == 0, latest.output
    rows = json.loads(latest.stdout)
    ids = [r["company_id"] for r in rows]
    assert len(ids) == len(set(ids)) == N  # the 40 companies scored on both nights appear once
    assert {r["run_date"] for r in rows} == {DAY.isoformat()}  # their latest night
    assert [(r["score"], r["company_id"]) for r in rows] == sorted(
        ((r["score"], r["company_id"]) for r in rows), reverse=True
    )
    everything = cli("export", "scores", "--tenant", "acme", "--all-dates", "--format", "json", "--limit", "1000")
    assert [(date.fromisoformat(r["run_date"]), r["company_id"]) for r in json.loads(everything.stdout)] == expected(
        scores, None
    )
    assert_one_line_error(cli("export", "scores", "--tenant", "acme", "--all-dates", "--date", "2026-03-02"), "exclude")


def test_latest_export_pages_by_cursor(app_db: Database, scores) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        with app_db.tenant_transaction(TENANT) as conn:
            rows, cursor = export_scores(conn, tenant_id=TENANT, day=None, after=cursor, limit=13, latest=True)
        seen += [r.company_id for r in rows]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == N
