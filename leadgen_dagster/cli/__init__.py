"""The `leadgen` command line: admin of tenants, rules and connections, migrations, and operations.

Every command prints a one-line error and exits 2 on bad input (never a traceback); Dagster is
imported only by the commands that run the pipeline, so admin commands start fast.
"""

from __future__ import annotations

from leadgen_dagster.cli.main import main

__all__ = ["main"]
