"""Run tags leadgen sets and reads, in one place.

`leadgen/tenant` is set by every run leadgen launches for a tenant (the schedule, `leadgen night`,
`leadgen dev`, background jobs). Runs launched from the UI or by a backfill carry Dagster's own
`dagster/partition/tenant` instead, so both are limited to one run per tenant (dagster.yaml) and
both name the tenant in alerts.
"""

import math
from collections.abc import Mapping

import dagster as dg

TENANT_TAG = "leadgen/tenant"
PARTITION_TENANT_TAG = "dagster/partition/tenant"  # Dagster's tag for the tenant dimension of a run's partition
DRY_RUN_TAG = "leadgen/dry_run"
START_AFTER_TAG = "leadgen/start_after_s"  # the schedule's stagger: seconds the night waits before its first stage
WILL_RETRY_TAG = "dagster/will_retry"  # set by Dagster on a failed run its run-retry daemon will retry


def is_dry_run(tags: Mapping[str, str]) -> bool:
    """True when the run was launched with `leadgen/dry_run=true`."""
    return tags.get(DRY_RUN_TAG, "").strip().lower() == "true"


def run_tenant(tags: Mapping[str, str]) -> tuple[str, str] | None:
    """(tag, tenant) of a run that belongs to one tenant, else None."""
    for key in (TENANT_TAG, PARTITION_TENANT_TAG):
        if tags.get(key):
            return key, tags[key]
    return None


ROOT_RUN_TAG = "dagster/root_run_id"  # Dagster's tag on a retry or re-execution: the chain's first run


def root_run_id(run: dg.DagsterRun) -> str:
    """The first run of a chain of retries and re-executions: one night, however many attempts."""
    return run.root_run_id or run.tags.get(ROOT_RUN_TAG) or run.run_id


def will_retry(tags: Mapping[str, str]) -> bool:
    """True for a failed run that Dagster's run retries will launch again (not yet a final failure)."""
    return tags.get(WILL_RETRY_TAG, "").strip().lower() == "true"


def start_after_s(tags: Mapping[str, str]) -> float:
    """The run's staggered start in seconds (0 when untagged or unreadable)."""
    try:
        value = float(tags.get(START_AFTER_TAG, "0") or 0)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0
