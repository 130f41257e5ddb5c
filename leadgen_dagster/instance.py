"""The Dagster instance: rendering dagster.yaml into DAGSTER_HOME with the settings applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from leadgen_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "dagster.yaml"


def render_instance_yaml(settings: Settings) -> str:
    """The template with the run limits, catch-up and log level taken from the settings."""
    config: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    runs = settings.sched_tenant_concurrency
    run_cfg = config["concurrency"]["runs"]
    run_cfg["max_concurrent_runs"] = runs
    for limit in run_cfg["tag_concurrency_limits"]:
        if limit["key"] == "dagster/backfill":
            limit["limit"] = max(1, runs - 2)  # backfills never take every slot from the nightly runs
    config["scheduler"]["config"]["max_catchup_runs"] = settings.catchup_nights
    config["python_logs"]["python_log_level"] = settings.log_level
    header = "# Rendered by leadgen from dagster.yaml; edit that file, not this one.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def write_dagster_home(settings: Settings, home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(render_instance_yaml(settings), encoding="utf-8")
    return home
