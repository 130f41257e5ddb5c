"""`leadgen instance render`: $DAGSTER_HOME/dagster.yaml from the template and the settings."""

from __future__ import annotations

import os
from pathlib import Path

import click

from leadgen_dagster.cli.common import friendly


@click.group()
def instance() -> None:
    """The Dagster instance configuration every way of starting Dagster uses."""


@instance.command("render")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The Dagster home to write dagster.yaml into (default: $DAGSTER_HOME).",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the rendered file instead of writing it.")
@friendly
def render(home: Path | None, to_stdout: bool) -> None:
    """Render dagster.yaml with SCHED_TENANT_CONCURRENCY and SCHED_CATCHUP_NIGHTS applied."""
    from leadgen_core.errors import ConfigError
    from leadgen_core.settings import Settings
    from leadgen_dagster.instance import render_instance_yaml, write_dagster_home

    settings = Settings()
    if to_stdout:
        click.echo(render_instance_yaml(settings), nl=False)
        return
    target = home or (Path(os.environ["DAGSTER_HOME"]) if os.environ.get("DAGSTER_HOME") else None)
    if target is None:
        raise ConfigError("no Dagster home: pass --home DIR or set DAGSTER_HOME")
    written = write_dagster_home(settings, target) / "dagster.yaml"
    click.echo(
        f"wrote {written}: {settings.sched_tenant_concurrency} concurrent runs, "
        f"catch-up {settings.catchup_nights} nights"
    )
