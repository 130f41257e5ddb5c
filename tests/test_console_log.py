"""A run's console lines: each stage's progress at INFO; Dagster's DEBUG event lines only when asked.

Real: the Dagster instance rendered from dagster.yaml as `leadgen dev` renders it (Postgres storage
on the test database; python_logs.python_log_level from LEADGEN_LOG_LEVEL), a product job
(`retention_job`) run on it by Dagster in a separate Python process, and that process's stderr, as
the terminal of `leadgen dev` shows a run worker's. `leadgen dev -v` renders LEADGEN_LOG_LEVEL=DEBUG;
tests/e2e checks the log of a real `leadgen dev` at the default level.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from leadgen_core.db.dsn import sqlalchemy_url
from tests.conftest import ROOT, DbHandle

RUN = """
import os
from pathlib import Path

import dagster as dg

from leadgen_core.settings import Settings
from leadgen_dagster.definitions import defs
from leadgen_dagster.instance import write_dagster_home

write_dagster_home(Settings(), Path(os.environ["DAGSTER_HOME"]))  # as `leadgen dev` does before Dagster starts
with dg.DagsterInstance.get() as instance:
    assert defs.resolve_job_def("retention_job").execute_in_process(instance=instance).success
"""
STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}"


def run_job(db: DbHandle, home: Path, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "LEADGEN_LOG_LEVEL"}
    base.update({"LEADGEN_APP_DATABASE_URL": db.app_dsn, "DAGSTER_HOME": str(home),
                 "LEADGEN_DAGSTER_PG_URL": sqlalchemy_url(db.owner_dsn, search_path="dagster")})  # fmt: skip
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", RUN], env={**base, **env},
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_a_run_prints_info_lines_and_no_debug_event_lines_by_default(clean_db: DbHandle, tmp_path: Path) -> None:
    err = run_job(clean_db, tmp_path)
    assert re.search(rf"^{STAMP} - dagster - INFO - retention_job - .* - retention: \{{", err, re.M), err
    assert " - DEBUG - " not in err and "STEP_START" not in err, err


@pytest.mark.parametrize("level", ["DEBUG", "debug"])
def test_leadgen_log_level_debug_adds_the_event_lines(clean_db: DbHandle, tmp_path: Path, level: str) -> None:
    err = run_job(clean_db, tmp_path, LEADGEN_LOG_LEVEL=level)
    assert re.search(rf"^{STAMP} - dagster - DEBUG - retention_job - .* - STEP_START - ", err, re.M), err
    assert " - INFO - retention_job - " in err


def test_leadgen_log_level_warning_hides_the_progress_lines(clean_db: DbHandle, tmp_path: Path) -> None:
    err = run_job(clean_db, tmp_path, LEADGEN_LOG_LEVEL="WARNING")
    assert " - INFO - " not in err and " - DEBUG - " not in err, err
