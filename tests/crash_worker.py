"""A tenant night in a process of its own, for the crash tests to `kill -9`.

Run as `python -m tests.crash_worker PARTITION`: it executes the product's `tenant_night_job` for
PARTITION on the Dagster instance in $DAGSTER_HOME, with everything else (database, sandbox,
settings) taken from the environment, exactly as a run worker does. Exit 0 on success, 1 on a
failed run.
"""

from __future__ import annotations

import sys

import dagster as dg


def main(partition: str) -> int:
    from leadgen_dagster.definitions import defs

    tenant = partition.split("|", 1)[1]
    with dg.DagsterInstance.get() as instance:
        if not instance.has_dynamic_partition("tenants", tenant):
            instance.add_dynamic_partitions("tenants", [tenant])
        result = defs.resolve_job_def("tenant_night_job").execute_in_process(
            partition_key=partition, instance=instance, tags={"leadgen/tenant": tenant}, raise_on_error=False
        )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
