"""The root `leadgen` command group."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

from leadgen_dagster.cli import admin, demo, dev, instance, night, ops, registry, sandbox
from leadgen_dagster.cli.errors import OneLineGroup

# Dagster flags preview APIs (partitioned checks, sensor owners) at import; noise on a CLI.
warnings.filterwarnings("ignore", module=r"dagster(\.|$)")


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """leadgen: ACRA registry to qualified leads in Odoo, one tenant-night at a time."""
    private_runtime_dir()


def private_runtime_dir() -> None:
    """Without XDG_RUNTIME_DIR (a container, cron, CI), the embedded Postgres' platformdirs warns on
    every command and falls back to a shared /tmp folder; a private one under LEADGEN_HOME serves."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    from leadgen_dagster.cli.common import settings

    run_dir = Path(settings().home).resolve() / "run"
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(run_dir)


main.add_command(admin.db)
main.add_command(admin.tenants)
main.add_command(admin.icp)
main.add_command(admin.odoo)
main.add_command(admin.vendors)
main.add_command(registry.acra)
main.add_command(registry.jobs)
main.add_command(sandbox.sandbox)
main.add_command(demo.demo)
main.add_command(dev.dev)
main.add_command(instance.instance)
main.add_command(night.night)
main.add_command(ops.export)
main.add_command(ops.suppress)
main.add_command(ops.budget)
