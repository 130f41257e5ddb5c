"""`leadgen sandbox up`: every simulator on loopback, in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from leadgen_dagster.cli.common import friendly
from leadgen_dagster.cli.params import FiniteFloatRange


def write_env_file(path: Path, env: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())), encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written file


@click.group()
def sandbox() -> None:
    """The vendor, Odoo, registry and website simulators."""


@sandbox.command("up")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the variables to export as KEY=VALUE lines, once every server listens.",
)
@click.option("--registry-rows", default=20_000, show_default=True, help="Size of the synthetic ACRA registry.")
@click.option(
    "--profile",
    type=click.Choice(["demo", "realistic"]),
    envvar="LEADGEN_SANDBOX_PROFILE",
    default="demo",
    show_default=True,
    help="demo: quick; realistic: the vendors' documented limits, latencies and payload sizes.",
)
@click.option(
    "--time-scale",
    type=FiniteFloatRange(min=0.001, max=1000),
    envvar="LEADGEN_SANDBOX_TIME_SCALE",
    default=1.0,
    show_default=True,
    help="Divide every simulated latency and multiply every simulated rate limit by this.",
)
@friendly
def sandbox_up(env_file: Path | None, registry_rows: int, profile: str, time_scale: float) -> None:
    """Start the simulators, print their URLs and environment, wait for SIGTERM or SIGINT."""
    from leadgen_core.gc_tuning import tune_for_simulators
    from leadgen_core.sandbox.cluster import SandboxCluster
    from leadgen_core.sandbox.profile import SandboxProfile

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with SandboxCluster(registry_rows=registry_rows, profile=SandboxProfile.parse(profile, time_scale)) as cluster:
        env = cluster.env()
        for key, value in sorted(env.items()):
            click.echo(f"export {key}={value}")
        if env_file is not None:
            write_env_file(env_file, env)
            click.echo(f"# written to {env_file}", err=True)
        tune_for_simulators()  # leadgen_core.gc_tuning: the request logs are long-lived
        click.echo("# sandbox running; Ctrl-C or SIGTERM stops it", err=True)
        stop.wait()
    click.echo("# sandbox stopped", err=True)
