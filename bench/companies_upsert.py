"""Benchmark: the nightly companies upsert against a bare COPY of the same rows.

    python -m bench.companies_upsert [--rows N | --quick]

Stages N synthetic ACRA rows through the real loader (validate + COPY + merge, timed as
`staging_s`), then, each phase starting from a checkpoint:

    copy_s         COPY of the staged rows (already serialised, from memory) into an empty table with
                   the staging table's columns and no indexes: the floor for moving these bytes in
    first_load_s   upsert_companies into an empty companies table
    rerun_s        upsert_companies again for the same snapshot date (nothing changed)
    next_night_s   upsert_companies for the next snapshot date, same content (every last_seen moves)

Targets: first_load_s <= 6 x copy_s, rerun_s <= 2 x copy_s. Between phases the tables are
VACUUM ANALYZEd, as autovacuum would have done during the day between two nights.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, timedelta

import psycopg

from bench.common import bench_database, emit_result, progress, server_facts, timed
from leadgen_core.acra.synth import generate_rows
from leadgen_core.db.pool import Database
from leadgen_core.registry.load import load_rows
from leadgen_core.registry.upsert import UPSERT_COMPANIES_SQL, UpsertCounts, upsert_companies

FULL_ROWS = 1_000_000
QUICK_ROWS = 100_000
SNAPSHOT = date(2026, 11, 21)
CHUNK = 1 << 20  # bytes per COPY write of the pre-serialised rows
FIRST_LOAD_TARGET = 6.0
RERUN_TARGET = 2.0


def _maintain(owner: psycopg.Connection, *tables: str) -> None:
    """What the day between two nights does (autovacuum), then a checkpoint so each phase starts clean."""
    for table in tables:
        owner.execute(f"VACUUM ANALYZE {table}")  # noqa: S608 - constant table names
    owner.execute("CHECKPOINT")


def _wal_lsn(owner: psycopg.Connection) -> str:
    row = owner.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _wal_mb_since(owner: psycopg.Connection, lsn: str) -> float:
    row = owner.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn,)).fetchone()
    assert row is not None
    return round(float(row[0]) / 1e6, 1)


def _size_mb(owner: psycopg.Connection, table: str) -> float:
    row = owner.execute("SELECT pg_total_relation_size(%s::regclass)", (table,)).fetchone()
    assert row is not None
    return round(int(row[0]) / 1e6, 1)


@dataclass(frozen=True)
class Options:
    rows: int
    seed: int
    malformed_rate: float
    work_mem: str | None
    fillfactor: int | None
    explain: bool


def _explain(db: Database, snapshot: date) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the product's upsert statement for SNAPSHOT, rolled back."""
    lines: list[str] = []
    with db.global_transaction(operation="bench explain") as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + UPSERT_COMPANIES_SQL, {"snapshot": snapshot}).fetchall()
        lines.extend(str(r[0]) for r in rows)
        raise psycopg.Rollback()
    return "\n".join(lines)


def _upsert(db: Database, owner: psycopg.Connection, label: str, snapshot: date, opts: Options) -> dict[str, object]:
    lsn = _wal_lsn(owner)
    progress(f"{label}: upsert_companies (snapshot_date={snapshot}) ...")
    with timed() as t, db.global_transaction(operation=f"bench {label}") as conn:
        if opts.work_mem:
            conn.execute("SELECT set_config('work_mem', %s, true)", (opts.work_mem,))
        counts: UpsertCounts = upsert_companies(conn, snapshot_date=snapshot)
    wal = _wal_mb_since(owner, lsn)
    progress(
        f"{label}: {t[0]:.2f}s  staged={counts.staged:,} inserted={counts.inserted:,} "
        f"updated={counts.updated:,} unchanged={counts.unchanged:,} wal={wal} MB"
    )
    return {"s": round(t[0], 3), "inserted": counts.inserted, "updated": counts.updated, "wal_mb": wal}


def run(opts: Options) -> dict[str, object]:
    rows, seed, malformed_rate = opts.rows, opts.seed, opts.malformed_rate
    with bench_database() as bdb, psycopg.connect(bdb.owner_dsn, autocommit=True) as owner:
        facts = server_facts(owner)
        progress(f"server {facts['server_version']} settings {facts['settings']}")
        db = Database(bdb.app_dsn, min_size=1, max_size=2, name="leadgen-bench")
        with db:
            # --- staging: the real loader (generation + validation + COPY + merge) ----------------
            progress(f"staging {rows:,} synthetic ACRA rows (seed {seed}, malformed {malformed_rate:.2%}) ...")

            def report(seen: int, rejected: int) -> None:
                if seen % 200_000 < 50_000 or seen == rows:
                    progress(f"  staged {seen:,} rows read, {rejected:,} quarantined")

            with timed() as t_stage:
                loaded = load_rows(
                    enumerate(generate_rows(rows, seed=seed, malformed_rate=malformed_rate), start=1),
                    conn=lambda: db.global_transaction(operation="bench staging"),
                    snapshot_date=SNAPSHOT,
                    source="bench:synth",
                    progress=report,
                )
            progress(f"staging: {loaded.staged:,} staged, {loaded.rejected:,} rejected in {t_stage[0]:.1f}s")
            _maintain(owner, "staging_acra_companies")

            # --- (a) the floor: a bare COPY of the same rows, already serialised ------------------
            with owner.cursor().copy("COPY staging_acra_companies TO STDOUT") as out:
                payload = b"".join(bytes(block) for block in out)
            progress(f"copy: {len(payload) / 1e6:.0f} MB of COPY text held in memory")
            owner.execute("CREATE TABLE bench_copy (LIKE staging_acra_companies INCLUDING DEFAULTS)")
            owner.execute("CHECKPOINT")
            lsn = _wal_lsn(owner)
            with timed() as t_copy, owner.transaction(), owner.cursor().copy("COPY bench_copy FROM STDIN") as cp:
                view = memoryview(payload)
                for start in range(0, len(view), CHUNK):
                    cp.write(view[start : start + CHUNK])
            copy_wal = _wal_mb_since(owner, lsn)
            copied = owner.execute("SELECT count(*) FROM bench_copy").fetchone()
            progress(f"copy: {copied[0] if copied else 0:,} rows in {t_copy[0]:.2f}s, wal={copy_wal} MB")
            owner.execute("DROP TABLE bench_copy")
            del payload, view
            owner.execute("CHECKPOINT")

            # --- (b) first load into empty companies ---------------------------------------------
            if opts.fillfactor:  # an experiment on this throw-away database only
                owner.execute(f"ALTER TABLE companies SET (fillfactor = {int(opts.fillfactor)})")
            first = _upsert(db, owner, "first load", SNAPSHOT, opts)
            companies_mb = _size_mb(owner, "companies")
            _maintain(owner, "companies")

            # --- (c) unchanged re-run, same snapshot ----------------------------------------------
            if opts.explain:
                progress("EXPLAIN (ANALYZE, BUFFERS) of the unchanged re-run (rolled back):\n" + _explain(db, SNAPSHOT))
                owner.execute("CHECKPOINT")
            rerun = _upsert(db, owner, "re-run", SNAPSHOT, opts)

            # --- (d) unchanged re-run for the next snapshot date (every last_seen moves) ----------
            nxt = SNAPSHOT + timedelta(days=1)
            progress(f"next night: moving the staged rows to snapshot {nxt} (untimed) ...")
            owner.execute("UPDATE staging_acra_companies SET snapshot_date = %s", (nxt,))
            _maintain(owner, "staging_acra_companies", "companies")
            if opts.explain:
                progress("EXPLAIN (ANALYZE, BUFFERS) of the next night (rolled back):\n" + _explain(db, nxt))
                _maintain(owner, "companies")
            night = _upsert(db, owner, "next night", nxt, opts)
            companies_after_mb = _size_mb(owner, "companies")

    copy_s = t_copy[0]
    first_s, rerun_s = float(first["s"]), float(rerun["s"])  # type: ignore[arg-type]
    result: dict[str, object] = {
        "rows": loaded.staged,
        "copy_s": round(copy_s, 3),
        "first_load_s": round(first_s, 3),
        "rerun_s": round(rerun_s, 3),
        "first_load_ratio": round(first_s / copy_s, 2),
        "rerun_ratio": round(rerun_s / copy_s, 2),
        "next_night_s": night["s"],
        "next_night_ratio": round(float(night["s"]) / copy_s, 2),  # type: ignore[arg-type]
        "staging_s": round(t_stage[0], 2),
        "generated": loaded.seen,
        "rejected": loaded.rejected,
        "first_load_target_met": first_s <= FIRST_LOAD_TARGET * copy_s,
        "rerun_target_met": rerun_s <= RERUN_TARGET * copy_s,
        "wal_mb": {
            "copy": copy_wal,
            "first_load": first["wal_mb"],
            "rerun": rerun["wal_mb"],
            "next_night": night["wal_mb"],
        },  # fmt: skip
        "companies_mb": {"after_first_load": companies_mb, "after_next_night": companies_after_mb},
        "server": bdb.kind,
        "server_version": facts["server_version"],
    }
    if opts.work_mem:
        result["work_mem"] = opts.work_mem
    if opts.fillfactor:
        result["fillfactor"] = opts.fillfactor
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.companies_upsert", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help=f"synthetic ACRA rows (default {FULL_ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"small run: {QUICK_ROWS:,} rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--malformed-rate", type=float, default=0.01, help="share of defective rows (quarantined)")
    parser.add_argument("--fillfactor", type=int, default=None, help="experiment: companies fillfactor (10..100)")
    parser.add_argument("--work-mem", default=None, help="session work_mem for the upserts (e.g. 256MB)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the re-runs (adds time)")
    args = parser.parse_args(argv)
    rows = QUICK_ROWS if args.quick else args.rows
    if rows <= 0:
        parser.error("--rows must be positive")
    if args.fillfactor is not None and not 10 <= args.fillfactor <= 100:
        parser.error("--fillfactor must be within 10..100")
    opts = Options(rows, args.seed, args.malformed_rate, args.work_mem, args.fillfactor, args.explain)
    emit_result(run(opts))


if __name__ == "__main__":
    main()
