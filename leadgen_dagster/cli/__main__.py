"""`python -m leadgen_dagster.cli`: the same command line as the `leadgen` script."""

from leadgen_dagster.cli import main

main()
