"""`leadgen night`: one tenant-date partition, headless, through Dagster's own execution.

The same asset code and checks as the scheduled night run in this process. When the date's
registry refresh has not happened it runs first. `--dry-run` tags the run `leadgen/dry_run=true`:
no billable vendor call and no Odoo write is made, and the would-be spend is reported.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from leadgen_core.settings import TIMEZONE
from leadgen_dagster.cli.common import friendly, owner_conn, resolve_tenant, settings

DRY_RUN_TAG = "leadgen/dry_run"


def _instance() -> Any:
    import dagster as dg

    # Inside `make dev` (DAGSTER_HOME set) the run shows in the UI; elsewhere it is ephemeral.
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _run_registry(instance: Any, day: date) -> None:
    from leadgen_dagster.definitions import defs

    click.echo(f"registry for {day} not refreshed yet: running registry_refresh_job first", err=True)
    result = defs.resolve_job_def("registry_refresh_job").execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False
    )
    if not result.success:
        raise click.ClickException("registry refresh failed; see the messages above")


def summarize(result: Any) -> list[str]:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            shown = {k: meta[k] for k in ("items", "done", "degraded", "failed", "duration_s") if k in meta}
            lines.append(f"  {mat.asset_key.to_user_string():<22} {shown}")
            if "forecast" in meta:
                lines.append(f"  {'':<22} dry-run forecast: {meta['forecast']}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            lines.append(f"  check {ev.check_name:<28} {'passed' if ev.passed else 'FAILED'}")
    return lines


@click.command("night")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option(
    "--date", "day_opt", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Night's date (default today SGT)."
)
@click.option("--dry-run", is_flag=True, help="No billable vendor calls and no Odoo writes; report the forecast.")
@friendly
def night(tenant: str, day_opt: datetime | None, dry_run: bool) -> None:
    """Run one tenant's night for one date, in this process, and print a summary."""
    from leadgen_core.registry import refresh_finished
    from leadgen_core.runtime import app_dsn, owner_dsn
    from leadgen_dagster.definitions import defs

    s = settings()
    day = day_opt.date() if day_opt else datetime.now(ZoneInfo(TIMEZONE)).date()
    owner = owner_dsn(s)
    os.environ.setdefault("LEADGEN_DATABASE_URL", owner)
    os.environ.setdefault("LEADGEN_APP_DATABASE_URL", app_dsn(s, owner=owner))
    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        ready = refresh_finished(conn, day)
    with _instance() as instance:
        if not instance.has_dynamic_partition("tenants", tid):
            instance.add_dynamic_partitions("tenants", [tid])
        if not ready:
            _run_registry(instance, day)
        click.echo(f"night {day}|{tid}{' (dry run)' if dry_run else ''}: running", err=True)
        result = defs.resolve_job_def("tenant_night_job").execute_in_process(
            partition_key=f"{day.isoformat()}|{tid}",
            instance=instance,
            tags={"leadgen/tenant": tid, DRY_RUN_TAG: "true" if dry_run else "false"},
            raise_on_error=False,
        )
        click.echo(f"night {day}|{tid}: {'succeeded' if result.success else 'FAILED'}")
        for line in summarize(result):
            click.echo(line)
        if not result.success:
            raise SystemExit(1)
