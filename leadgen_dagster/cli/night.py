"""`leadgen night`: one tenant-date partition, headless, through Dagster's own execution.

The same asset code and checks as the scheduled night run in this process. When the date's
registry refresh has not happened it runs first. `--dry-run` tags the run `leadgen/dry_run=true`:
no billable vendor call and no Odoo write is made, and the would-be spend is reported.

With no vendor key and no vendor base URL configured, the command starts the sandbox simulators
for the length of the run (as `leadgen dev` does) and says so; the tenant's Odoo connection is
used as configured.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from datetime import date, datetime
from typing import Any

import click

from leadgen_core.clock import today_sg
from leadgen_dagster.cli.common import friendly, owner_conn, resolve_tenant, settings
from leadgen_dagster.night_guard import exclusive_night
from leadgen_dagster.tags import DRY_RUN_TAG, TENANT_TAG


def _instance(owner: str) -> Any:
    import dagster as dg

    from leadgen_core.db.dsn import sqlalchemy_url

    # Inside `make dev` (DAGSTER_HOME set) the run shows in the UI; elsewhere it is ephemeral.
    if not os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.ephemeral()
    # leadgen's dagster.yaml keeps Dagster's storage in this database's `dagster` schema
    os.environ.setdefault("LEADGEN_DAGSTER_PG_URL", sqlalchemy_url(owner, search_path="dagster"))
    return dg.DagsterInstance.get()


def _run_registry(instance: Any, day: date) -> None:
    from leadgen_dagster.definitions import defs

    click.echo(f"no registry snapshot for {day} yet: running registry_refresh_job first", err=True)
    result = defs.resolve_job_def("registry_refresh_job").execute_in_process(instance=instance, raise_on_error=False)
    if not result.success:
        raise click.ClickException("registry refresh failed; see the messages above")


SUMMARY_HEADER = f"  {'stage':<22} {'items':>6} {'done':>6} {'degraded':>8}  {'duration':>8}  units, top reasons"
TOP_REASONS = 3


def _counts(meta: dict[str, Any], prefix: str) -> list[tuple[str, int]]:
    """The `PREFIX<name>` int metadata of a stage, largest first (`units_tavily`, `degraded_site_down`)."""
    found = [(k.removeprefix(prefix), int(v)) for k, v in meta.items() if k.startswith(prefix) and isinstance(v, int)]
    return sorted((kv for kv in found if kv[1]), key=lambda kv: (-kv[1], kv[0]))


def _plain(value: Any) -> str:
    """A metadata value as words: `tavily 3, openai 1200`, never a Python dict repr."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "none"
    return str(value)


def stage_line(asset: str, meta: dict[str, Any]) -> str:
    """One row of the night's table: items, done, degraded, duration, then units and top reasons."""
    units = ", ".join(f"{v} {n}" for v, n in _counts(meta, "units_"))
    reasons = ", ".join(f"{r} {n}" for r, n in _counts(meta, "degraded_")[:TOP_REASONS])
    extra = "; ".join(x for x in (units and f"units: {units}", reasons and f"degraded: {reasons}") if x)
    return (
        f"  {asset:<22} {meta.get('items', 0):>6} {meta.get('done', 0):>6} {meta.get('degraded', 0):>8}  "
        f"{float(meta.get('duration_s', 0.0)):>7.1f}s  {extra}"
    ).rstrip()


def summarize(result: Any) -> list[str]:
    """The night as a table (one row per stage), then each check; plain words and numbers only."""
    rows, checks = [SUMMARY_HEADER], []
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
            rows.append(stage_line(mat.asset_key.to_user_string(), meta))
            if "forecast" in meta:
                rows.append(f"  {'':<22} dry-run forecast: {_plain(meta['forecast'])}")
        elif event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            checks.append(f"  check {ev.check_name:<28} {'passed' if ev.passed else 'FAILED'}")
    return rows + checks


def log_config(verbose: bool) -> dict[str, Any]:
    """Dagster's console logger: each stage's progress at INFO; its DEBUG event lines only with -v."""
    return {"loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "INFO"}}}}


def night_forecast_of(result: Any, s: Any, *, time_scale: float = 1.0, history: Any = None) -> Any:
    """The dry run's NightForecast: its stages' calls and units, and the duration from the vendor
    limits in settings S. TIME_SCALE divides the typical latencies (a sandbox whose latencies
    are divided and limits multiplied by it; S then carries the multiplied limits). HISTORY
    (`forecast.night_history`): what the tenant's recent nights cost and took per target."""
    from leadgen_core.enrich.clients import DEFAULT_RATES, vendor_rate
    from leadgen_core.spend.forecast import night_forecast
    from leadgen_core.vendors.limits import ZEROBOUNCE_VALIDATE_PER_10S
    from leadgen_core.vendors.openai_tiers import tier_limits

    stages: list[tuple[dict[str, int], dict[str, int]]] = []
    targets = 0
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        mat = event.event_specific_data.materialization
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        if mat.asset_key.to_user_string() == "daily_targets":
            targets = int(meta.get("items", 0))
        if "forecast_calls" in meta:
            stages.append((meta["forecast_calls"], meta.get("forecast_units", {})))
        elif isinstance(meta.get("forecast"), dict) and "calls" in meta["forecast"]:
            stages.append((meta["forecast"]["calls"], meta["forecast"].get("units", {})))
    tier = tier_limits(s.openai_tier)
    rates = {v: vendor_rate(v, s).per_s for v in DEFAULT_RATES}
    rates["openai"] = (s.openai_rpm or tier.rpm) / 60  # the token-aware limiter's RPM, not the request limiter's
    if s.zerobounce_mode == "single":  # /v2/validate: 80,000 per 10 s, not validatebatch's 5 a minute
        rates["zerobounce"] = ZEROBOUNCE_VALIDATE_PER_10S / 10 * time_scale
    return night_forecast(
        stages,
        pages=targets * s.crawl_max_pages,
        workers=s.sched_company_concurrency,
        rates=rates,
        unit_rates={"openai": (s.openai_tpm or tier.tpm) / 60},  # TPM counts prompt + max_completion_tokens
        vendor_workers={"zerobounce": s.zerobounce_in_flight} if s.zerobounce_mode == "single" else None,
        targets=targets,
        time_scale=time_scale,
        history=history,
    )


def tenant_history(tenant_id: str, day: date) -> Any:
    """The tenant's recent real nights before DAY (`forecast.night_history`), None before its first."""
    from leadgen_core.db.pool import set_tenant
    from leadgen_core.spend.forecast import night_history

    with owner_conn() as conn:
        set_tenant(conn, tenant_id)
        return night_history(conn, tenant_id=tenant_id, day=day)


def forecast_lines(result: Any, s: Any, history: Any = None) -> list[str]:
    """The dry run's totals per vendor and its estimated duration."""
    fc = night_forecast_of(result, s, history=history)
    basis = (f"units per target from the last {history.nights} real night(s)" if history is not None
             else "no real night yet: units are the stages' upper bounds")  # fmt: skip
    return [f"dry-run forecast for the night ({basis}):", *fc.lines()]


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@click.command("night")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option(
    "--date", "day_opt", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Night's date (default today SGT)."
)
@click.option("--dry-run", is_flag=True, help="No billable vendor calls and no Odoo writes; report the forecast.")
@click.option("-v", "--verbose", is_flag=True, help="Also print Dagster's DEBUG event lines.")
@friendly
def night(tenant: str, day_opt: datetime | None, dry_run: bool, verbose: bool) -> None:
    """Run one tenant's night for one date, in this process, and print a summary."""
    from leadgen_core.registry.upsert import latest_refresh
    from leadgen_core.runtime import app_dsn, owner_dsn, uses_sandbox
    from leadgen_dagster.definitions import defs
    from leadgen_dagster.partitions import check_night_date

    s = settings()
    day = check_night_date(day_opt.date() if day_opt else today_sg())
    owner = owner_dsn(s)
    os.environ.setdefault("LEADGEN_DATABASE_URL", owner)
    os.environ.setdefault("LEADGEN_APP_DATABASE_URL", app_dsn(s, owner=owner))
    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        snapshot = latest_refresh(conn)
        ready = snapshot is not None and snapshot >= day  # one current snapshot: any as new as the night
    with ExitStack() as stack, _instance(owner) as instance:
        stack.enter_context(exclusive_night(owner, instance, tid))
        if uses_sandbox(s):
            from leadgen_core.sandbox.cluster import SandboxCluster

            cluster = stack.enter_context(SandboxCluster())
            sandbox_env = cluster.env()
            kept = ("ODOO_SANDBOX_URL", "ODOO_SANDBOX_KEY", "ACRA_API_URL", "ACRA_RESOURCE_IDS", "ACRA_DOWNLOAD_URL")
            for key in kept:
                if os.environ.get(key):
                    sandbox_env.pop(key)  # keep what the caller set (a running `make dev` sandbox, say)
            saved = {k: os.environ.get(k) for k in sandbox_env}
            stack.callback(_restore_env, saved)  # the sandbox's variables die with it
            os.environ.update(sandbox_env)
            click.echo("no vendor keys configured: running against the sandbox simulators", err=True)
        if not instance.has_dynamic_partition("tenants", tid):
            instance.add_dynamic_partitions("tenants", [tid])
        if not ready:
            _run_registry(instance, day)
        click.echo(f"night {day}|{tid}{' (dry run)' if dry_run else ''}: running", err=True)
        result = defs.resolve_job_def("tenant_night_job").execute_in_process(
            partition_key=f"{day.isoformat()}|{tid}",
            instance=instance,
            tags={TENANT_TAG: tid, DRY_RUN_TAG: "true" if dry_run else "false"},
            raise_on_error=False,
            run_config=log_config(verbose),
        )
        click.echo(f"night {day}|{tid}: {'succeeded' if result.success else 'FAILED'}")
        for line in summarize(result):
            click.echo(line)
        if dry_run and result.success:
            for line in forecast_lines(result, s, tenant_history(tid, day)):
                click.echo(line)
        if not result.success:
            raise SystemExit(1)
