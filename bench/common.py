"""Shared plumbing for the benchmarks: the server, a throw-away database, progress and the RESULT line.

The server is chosen as everywhere else in the project: LEADGEN_DATABASE_URL when set, otherwise the
private embedded Postgres (pgserver) under LEADGEN_HOME. Each benchmark creates its own database on
that server (`leadgen_bench_<random>`), migrates it with the real migrator, and drops it at the end,
also when the run fails or is interrupted (SIGTERM is turned into SystemExit so `finally` runs).
Progress goes to stderr; stdout carries only the final `RESULT {json}` line.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType

import psycopg
from psycopg import sql

from leadgen_core.db.dsn import as_role, with_database
from leadgen_core.db.migrate import group_role_of, migrate
from leadgen_core.redaction import redact
from leadgen_core.settings import Settings

_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the benchmark started (stdout is for RESULT)."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def emit_result(result: dict[str, object]) -> None:
    """The final line: `RESULT {json}`, with the machine's load average (other work skews timings)."""
    result = {**result, "loadavg_1m_end": round(os.getloadavg()[0], 2)}
    print("RESULT " + json.dumps(result, sort_keys=False), flush=True)


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then `t[0]` holds the elapsed seconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class BenchDb:
    server_dsn: str  # the maintenance database on the chosen server
    name: str
    owner_dsn: str
    app_dsn: str
    app_role: str
    kind: str  # "embedded" or "external"


def server_dsn(settings: Settings) -> tuple[str, str]:
    """(DSN of a maintenance database on the chosen server, "external" | "embedded")."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value(), "external"
    from leadgen_core.db.embedded import embedded_dsn, private_runtime_dir

    private_runtime_dir(settings.home)  # as the CLI does: no platformdirs warning, no shared /tmp folder
    return embedded_dsn(settings.home), "embedded"


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def bench_database(prefix: str = "leadgen_bench") -> Iterator[BenchDb]:
    """A fresh, migrated database on the chosen server; dropped on exit, whatever happened."""
    settings = Settings()
    server, kind = server_dsn(settings)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    previous = signal.signal(signal.SIGTERM, _sigterm)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # noqa: S608 - generated identifier, no user input
    progress(f"created database {name} on the {kind} server ({redact(server)})")
    try:
        owner = with_database(server, name)
        migrate(owner, app_role=settings.app_role)
        password = settings.app_password.get_secret_value() if settings.app_password else None
        app = as_role(owner, role=settings.app_role, password=password)
        yield BenchDb(server, name, owner, app, settings.app_role, kind)
    finally:
        try:
            group = None  # the database's own group role (sql/010): cluster-wide, it outlives the database
            with suppress(psycopg.OperationalError), psycopg.connect(with_database(server, name)) as conn:
                group = group_role_of(conn)
            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # noqa: S608 - generated identifier
                if group:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))
            progress(f"dropped database {name}" + (f" and its group role {group}" if group else ""))
        except psycopg.Error as exc:  # report, but do not hide the benchmark's own error
            print(f"could not drop database {name}: {redact(str(exc)).strip()}", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, previous)


SETTINGS_SHOWN = (
    "shared_buffers", "work_mem", "maintenance_work_mem", "max_wal_size", "synchronous_commit",
    "wal_level", "jit", "max_parallel_workers_per_gather",
)  # fmt: skip


def server_facts(conn: psycopg.Connection) -> dict[str, object]:
    """The server's version and the settings that move these numbers."""
    version = conn.execute("SHOW server_version").fetchone()
    rows = conn.execute(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
        (list(SETTINGS_SHOWN),),
    ).fetchall()
    return {"server_version": version[0] if version else None, "settings": {r[0]: r[1] for r in rows}}
