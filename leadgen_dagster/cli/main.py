"""The root `leadgen` command group."""

from __future__ import annotations

import warnings

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
    """The embedded Postgres' private XDG_RUNTIME_DIR under LEADGEN_HOME (no warning per command)."""
    from leadgen_core.db.embedded import private_runtime_dir as under
    from leadgen_dagster.cli.common import settings

    under(settings().home)


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
