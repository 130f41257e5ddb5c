"""The adversarial tenant-isolation suite.

Real: Postgres, the migrated schema, and the application role (no BYPASSRLS, not the owner).
Rows are seeded as the owner; every probe runs as the app role through the product's own pool.
The tenant-owned tables are discovered from the catalog, so a new table with a tenant_id
column and no RLS, or no sample row here, fails this suite.
"""

from __future__ import annotations

import threading
from datetime import date

import psycopg
import psycopg.conninfo
import pytest
from psycopg import sql

from leadgen_core.db.pool import Database
from leadgen_core.errors import DatabaseError, TenantIsolationError
from tests.conftest import add_tenant

D = date(2026, 1, 5)

# One valid row per tenant-owned table; {t} is the tenant, {c} a company id of the shared data.
SAMPLES: dict[str, dict[str, object]] = {
    "tenants": {},  # seeded by add_tenant
    "odoo_connections": {},  # seeded by add_tenant
    "icp_rules": {"name": "default", "payload": '{"industries": ["software"]}'},
    "icp_candidates": {"run_date": D, "company_id": "{c}", "matched_by": "primary_ssic"},
    "daily_targets": {"run_date": D, "company_id": "{c}", "priority": 1},
    "company_stage_status": {"run_date": D, "company_id": "{c}", "stage": "crawl", "status": "done"},
    "enrichment_runs": {"run_date": D, "dagster_run_id": "run-{t}"},
    "lead_features": {"run_date": D, "company_id": "{c}", "features": "{}", "feature_hash": "h"},
    "lead_scores": {
        "run_date": D, "company_id": "{c}", "score": 0.5, "bucket": "medium", "contributions": "{}",
        "rationale": "r", "rationale_source": "template",
    },
    "vendor_usage": {"usage_date": D, "vendor": "tavily", "units": 3},
    "tenant_budgets": {"vendor": "tavily", "daily_cap": 10},
    "suppression_emails": {"value": "x@{t}.example", "kind": "email"},
    "background_jobs": {"job_type": "staging_upsert", "status": "queued"},
    "run_stage_stats": {"run_date": D, "stage": "crawl", "started_at": "2026-01-05T01:00:00+08"},
    "odoo_sync_log": {"run_date": D, "model": "res.partner", "item_key": "k", "action": "created", "status": "ok"},
    "tenant_vendor_accounts": {"vendor": "tavily", "secret_ref": "env:TENANT_SECRET_X", "plan": "production"},
    "spend_reservations": {"usage_date": D, "vendor": "openai", "units": 400, "run_id": "r1", "fingerprint": "f"},
}  # fmt: skip

TENANTS = ("tenant-a", "tenant-b")
ODOO_SAMPLE = {"base_url": "https://b.example", "db_name": "b", "protocol": "json2", "login": "b",
               "secret_ref": "env:B_ODOO_KEY"}  # fmt: skip


def tenant_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def seeded(owner_conn: psycopg.Connection) -> dict[str, int]:
    company = owner_conn.execute(
        "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
        "VALUES ('201900001A', 'Shared Co', '\\x00', %s, %s) RETURNING company_id",
        (D, D),
    ).fetchone()[0]
    for t in TENANTS:
        add_tenant(owner_conn, t)
        for table, sample in SAMPLES.items():
            if not sample:
                continue
            cols = ["tenant_id", *sample]
            vals = [t] + [
                (v.replace("{t}", t).replace("{c}", str(company)) if isinstance(v, str) else v) for v in sample.values()
            ]
            owner_conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                vals,
            )
    counts = {"company_id": company}
    for table in SAMPLES:
        counts[table] = owner_conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE tenant_id = 'tenant-b'").format(sql.Identifier(table))
        ).fetchone()[0]
    return counts


def test_every_tenant_table_is_covered_and_forced(owner_conn: psycopg.Connection) -> None:
    tables = tenant_tables(owner_conn)
    assert set(tables) == set(SAMPLES), "a tenant-owned table lacks a sample row (and maybe RLS)"
    for table in tables:
        enabled, forced = owner_conn.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", (table,)
        ).fetchone()
        assert (enabled, forced) == (True, True), table
        policy = owner_conn.execute(
            "SELECT qual, with_check FROM pg_policies WHERE tablename = %s AND policyname = 'tenant_isolation'",
            (table,),
        ).fetchone()
        assert policy is not None and "request.tenant_id" in policy[0] and "request.tenant_id" in policy[1], table


def touched(app_db: Database, statement: sql.Composed) -> int | str:
    """Rows a statement touched as tenant A, or "denied" when the role may not run it at all."""
    try:
        with app_db.tenant_transaction("tenant-a") as conn:
            return conn.execute(statement).rowcount
    except DatabaseError as exc:
        assert "permission denied" in str(exc)
        return "denied"


def test_tenant_a_sees_and_touches_nothing_of_b(app_db: Database, seeded: dict[str, int]) -> None:
    assert all(n == 1 for t, n in seeded.items() if t in SAMPLES), seeded  # B really has rows everywhere
    for table in SAMPLES:
        ident = sql.Identifier(table)
        with app_db.tenant_transaction("tenant-a") as conn:
            owners = {r[0] for r in conn.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(ident))}
            assert owners == {"tenant-a"}, table
        for verb in (
            "UPDATE {} SET tenant_id = tenant_id WHERE tenant_id = 'tenant-b'",
            "DELETE FROM {} WHERE tenant_id = 'tenant-b'",
        ):
            assert touched(app_db, sql.SQL(verb).format(ident)) in (0, "denied"), (table, verb)
    for table in ("vendor_usage", "suppression_emails", "lead_scores"):
        with pytest.raises(DatabaseError, match="tenant tenant-a"):
            with app_db.tenant_transaction("tenant-a", operation=f"insert into {table}") as conn:
                conn.execute(
                    sql.SQL("UPDATE {} SET tenant_id = 'tenant-b' WHERE tenant_id = 'tenant-a'").format(
                        sql.Identifier(table)
                    )
                )
    # an INSERT of B's row is refused on every tenant-owned table (RLS's WITH CHECK, or no grant)
    company = seeded["company_id"]
    inserts = {**SAMPLES, "tenants": {"name": "Intruder"}, "odoo_connections": ODOO_SAMPLE}
    for table, sample in inserts.items():
        cols = ["tenant_id", *sample]
        vals = ["tenant-b"] + [
            (v.replace("{t}", "b2").replace("{c}", str(company)) if isinstance(v, str) else v) for v in sample.values()
        ]
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Literal(v) for v in vals),
        )
        with pytest.raises(DatabaseError) as refused:
            with app_db.tenant_transaction("tenant-a") as conn:
                conn.execute(statement)
        assert any(w in str(refused.value) for w in ("row-level security", "permission denied")), (table, refused)


def test_no_tenant_set_sees_zero_rows(app_db: Database, seeded: dict[str, int]) -> None:
    with app_db.global_transaction() as conn:
        for table in SAMPLES:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            assert n == 0, table
        # the directory function is the one sanctioned way to list tenants
        assert [r[0] for r in conn.execute("SELECT tenant_id FROM leadgen_tenant_directory()")] == list(TENANTS)


def test_setting_does_not_leak_to_the_next_borrower(app_db: Database, seeded: dict[str, int]) -> None:
    with app_db.tenant_transaction("tenant-a") as conn:
        assert conn.execute("SELECT count(*) FROM vendor_usage").fetchone()[0] == 1
    with app_db.global_transaction() as conn:
        assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone()[0] in (None, "")
        assert conn.execute("SELECT count(*) FROM vendor_usage").fetchone()[0] == 0


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE lead_scores DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE lead_scores NO FORCE ROW LEVEL SECURITY",
        "ALTER POLICY tenant_isolation ON lead_scores USING (true)",
        "DROP POLICY tenant_isolation ON lead_scores",
        "CREATE POLICY sneaky ON lead_scores USING (true)",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "ALTER ROLE CURRENT_USER BYPASSRLS",
    ],
)
def test_app_role_cannot_escape(app_db: Database, statement: str) -> None:
    with pytest.raises(DatabaseError):
        with app_db.global_transaction() as conn:
            conn.execute(statement)


def test_app_role_is_not_privileged(app_db: Database) -> None:
    with app_db.global_transaction() as conn:
        row = conn.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (False, False)
        owned = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user"
        ).fetchone()[0]
        assert owned == 0


@pytest.mark.parametrize("bad", ["", "A", "tenant_a", "x' OR '1'='1", "a" * 64, None])
def test_invalid_tenant_ids_are_refused(app_db: Database, bad: object) -> None:
    with pytest.raises(TenantIsolationError):
        with app_db.tenant_transaction(bad):  # type: ignore[arg-type]
            pass


def test_interleaved_transactions_over_a_small_pool_never_cross(clean_db, owner_conn) -> None:  # type: ignore[no-untyped-def]
    for t in TENANTS:
        add_tenant(owner_conn, t)
    db = Database(clean_db.app_dsn, min_size=2, max_size=2, name="leadgen-interleave")
    seen_wrong: list[str] = []
    per_thread = 250

    def worker(tenant: str, offset: int) -> None:
        for i in range(per_thread):
            with db.tenant_transaction(tenant) as conn:
                conn.execute(
                    "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, %s, 'email')",
                    (tenant, f"u{offset}-{i}@{tenant}.example"),
                )
                owners = {r[0] for r in conn.execute("SELECT DISTINCT tenant_id FROM suppression_emails")}
                if owners != {tenant}:
                    seen_wrong.append(f"{tenant} saw {owners}")

    with db:
        threads = [threading.Thread(target=worker, args=(TENANTS[i % 2], i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert seen_wrong == []
        for t in TENANTS:
            with db.tenant_transaction(t) as conn:
                assert conn.execute("SELECT count(*) FROM suppression_emails").fetchone()[0] == 2 * per_thread


def test_one_connection_carries_nothing_between_borrowers(clean_db, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """Over a pool of one connection: session settings, a failed block and a failed COMMIT leave nothing behind."""
    add_tenant(owner_conn, "tenant-a")
    db = Database(clean_db.app_dsn, min_size=1, max_size=1, name="leadgen-one")
    with db:
        with db.tenant_transaction("tenant-a") as conn:
            conn.execute("SELECT set_config('request.tenant_id', 'tenant-a', false)")
            conn.execute("SET statement_timeout = 1234")
        with db.global_transaction() as conn:
            assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone()[0] in (None, "")
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"

        insert = "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES ('tenant-a', %s, 'email')"

        def failing_work() -> None:
            with db.tenant_transaction("tenant-a") as conn:
                conn.execute(insert, ("gone@a.example",))
                conn.execute("SELECT set_config('request.tenant_id', 'tenant-a', false)")
                raise RuntimeError("work failed")

        def failing_commit() -> None:
            with db.tenant_transaction("tenant-a") as conn:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS late (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
                conn.execute("SET timezone = 'Asia/Tokyo'")
                conn.execute("INSERT INTO late VALUES (1), (1)")

        with pytest.raises(RuntimeError):
            failing_work()
        with db.tenant_transaction("tenant-a") as conn:  # a savepoint inside the block rolls back alone
            conn.execute(insert, ("kept@a.example",))
            with pytest.raises(psycopg.errors.UniqueViolation):
                with conn.transaction():
                    conn.execute(insert, ("kept@a.example",))
        with db.global_transaction() as conn:
            assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone()[0] in (None, "")
        with db.tenant_transaction("tenant-a") as conn:
            assert [r[0] for r in conn.execute("SELECT value FROM suppression_emails")] == ["kept@a.example"]

        with pytest.raises(DatabaseError, match="duplicate key"):  # the error comes from COMMIT itself
            failing_commit()
        with db.global_transaction() as conn:
            assert conn.execute("SHOW timezone").fetchone()[0] != "Asia/Tokyo"
            assert conn.execute("SELECT to_regclass('pg_temp.late')").fetchone()[0] is None  # rolled back


def test_pool_sessions_plan_prepared_statements_once(clean_db) -> None:  # type: ignore[no-untyped-def]
    """The pool's startup option (SESSION_OPTIONS) survives every borrower's RESET ALL, and a DSN's
    own `options` are kept next to it."""
    from leadgen_core.db.pool import pool_kwargs

    dsn_with_options = psycopg.conninfo.make_conninfo(clean_db.app_dsn, options="-c statement_timeout=4321")
    for dsn, timeout in ((clean_db.app_dsn, "0"), (dsn_with_options, "4321ms")):
        db = Database(dsn, min_size=1, max_size=1, name="leadgen-plan")
        with db:
            for _ in range(2):  # the second borrower comes after the first one's RESET ALL
                with db.global_transaction() as conn:
                    assert conn.execute("SHOW plan_cache_mode").fetchone()[0] == "force_generic_plan"
                    assert conn.execute("SHOW statement_timeout").fetchone()[0] == timeout
    assert pool_kwargs("host=/nowhere options='-c work_mem=8MB'", "x")["options"] == (
        "-c work_mem=8MB -c plan_cache_mode=force_generic_plan"
    )
    assert pool_kwargs("not a dsn ===", "x")["options"] == "-c plan_cache_mode=force_generic_plan"


def test_transactions_opened_counts_every_transaction_of_every_pool(clean_db) -> None:  # type: ignore[no-untyped-def]
    """bench.nightly reports `db_transactions_per_company` from this counter: tenant and global
    transactions both count, a failed one too, and only transactions (not pool checkouts alone)."""
    from leadgen_core.db.pool import transactions_opened

    before = transactions_opened()
    with Database(clean_db.app_dsn, min_size=1, max_size=2, name="leadgen-count") as db:
        with db.global_transaction() as conn:
            conn.execute("SELECT 1")
        with db.tenant_transaction("count-a") as conn:
            conn.execute("SELECT 1")
        with pytest.raises(DatabaseError), db.global_transaction() as conn:
            conn.execute("SELECT 1 / 0")
        assert transactions_opened() - before == 3
    assert transactions_opened() - before == 3


def test_a_global_statement_is_its_own_transaction_and_leaves_nothing_behind(clean_db, owner_conn) -> None:  # type: ignore[no-untyped-def]
    """`global_statement` (the rate limiters' bookings): the statement commits by itself, counts as
    a transaction, sees no tenant's rows, maps a failure to DatabaseError, and a transaction a
    caller opens anyway is rolled back and refused, so the next borrower finds a clean session."""
    from leadgen_core.db.pool import transactions_opened

    add_tenant(owner_conn, "stmt-a")  # a tenant with an Odoo connection row
    before = transactions_opened()
    with Database(clean_db.app_dsn, min_size=1, max_size=1, name="leadgen-stmt") as db:
        with db.global_statement() as conn:
            conn.execute("INSERT INTO rate_limit_token_buckets (bucket, level, updated_at) VALUES ('t:stmt', 1, now())")
        with psycopg.connect(clean_db.app_dsn, autocommit=True) as other:  # committed: another session sees it
            assert other.execute("SELECT level FROM rate_limit_token_buckets WHERE bucket = 't:stmt'").fetchone() == (
                1,
            )
        with db.global_statement() as conn:  # no tenant is set: tenant tables show nothing
            assert conn.execute("SELECT count(*) FROM odoo_connections").fetchone() == (0,)
        with pytest.raises(DatabaseError, match="failed"), db.global_statement() as conn:
            conn.execute("SELECT 1 / 0")
        with pytest.raises(DatabaseError, match="left open"), db.global_statement() as conn:
            conn.execute("BEGIN; UPDATE rate_limit_token_buckets SET level = 99 WHERE bucket = 't:stmt'")
        with db.global_statement() as conn:  # the one connection again: idle, and the update undone
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.execute("SELECT level FROM rate_limit_token_buckets WHERE bucket = 't:stmt'").fetchone() == (1,)
    assert transactions_opened() - before == 5  # one per checkout


def test_a_pipelined_tenant_transaction_is_scoped_committed_reset_and_rolled_back_on_error(
    clean_db, owner_conn
) -> None:  # type: ignore[no-untyped-def]
    """`tenant_pipeline` (a paid call's record): BEGIN, the tenant, the statements, COMMIT and the
    reset in one pipeline. Row-level security shows the tenant's rows only; the writes commit; the
    next borrower inherits no tenant; a failing statement rolls the whole block back."""
    for t in ("pipe-a", "pipe-b"):
        add_tenant(owner_conn, t, rules={"v": 0})
    with Database(clean_db.app_dsn, min_size=1, max_size=1, name="leadgen-pipe") as db:
        with db.tenant_pipeline("pipe-a") as conn:
            seen = conn.execute("SELECT tenant_id FROM icp_rules")
            conn.execute("""UPDATE icp_rules SET payload = '{"v": 1}'""")  # only pipe-a's row
            assert seen.fetchall() == [("pipe-a",)]
        with db.global_statement() as conn:  # the one connection: no tenant left on the session
            assert conn.execute("SELECT current_setting('request.tenant_id', true)").fetchone() in {("",), (None,)}

        def write_then_fail() -> None:
            with db.tenant_pipeline("pipe-b") as conn:
                conn.execute("""UPDATE icp_rules SET payload = '{"v": 2}'""")
                conn.execute("SELECT 1 / 0")

        with pytest.raises(DatabaseError, match="pipe-b"):
            write_then_fail()
        with db.tenant_pipeline("pipe-b") as conn:  # usable again, and nothing of the failed block stayed
            assert conn.execute("SELECT payload FROM icp_rules").fetchall() == [({"v": 0},)]
    rows = owner_conn.execute("SELECT tenant_id, payload FROM icp_rules ORDER BY 1").fetchall()
    assert rows == [("pipe-a", {"v": 1}), ("pipe-b", {"v": 0})]
