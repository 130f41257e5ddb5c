"""Run tags leadgen sets and reads, in one place.

`leadgen/tenant` is set by every run leadgen launches for a tenant (the schedule, `leadgen night`,
`leadgen dev`, background jobs). Runs launched from the UI or by a backfill carry Dagster's own
`dagster/partition/tenant` instead, so both are limited to one run per tenant (dagster.yaml) and
both name the tenant in alerts.
"""

import math
from collections.abc import Mapping
from datetime import datetime

import dagster as dg

TENANT_TAG = "leadgen/tenant"
PARTITION_TENANT_TAG = "dagster/partition/tenant"  # Dagster's tag for the tenant dimension of a run's partition
DRY_RUN_TAG = "leadgen/dry_run"
START_AFTER_TAG = "leadgen/start_after_s"  # the schedule's stagger: seconds the night waits before its first stage
SCHEDULED_TAG = "leadgen/scheduled"  # a night launched by the schedule → registry → night chain
NIGHT_DATE_TAG = "leadgen/night_date"  # on the registry run the 01:00 schedule launches: the night it opens
NIGHT_START_TAG = "leadgen/night_start"  # ISO time of the night's 01:00 tick: where its SLA clock starts
REGISTRY_STALE_TAG = "leadgen/registry_stale"  # "true": the night runs on the last good snapshot
RESELECT_TAG = "leadgen/reselect"  # "true": select the partition's targets afresh instead of keeping them
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


def night_clock_start(tags: Mapping[str, str]) -> datetime | None:
    """Where a scheduled night's SLA clock starts (its 01:00 tick), None for other runs."""
    try:
        return datetime.fromisoformat(tags[NIGHT_START_TAG])
    except (KeyError, ValueError):
        return None


def is_reselect(tags: Mapping[str, str]) -> bool:
    """True when the run asks for the partition's targets to be selected afresh (`leadgen/reselect=true`)."""
    return tags.get(RESELECT_TAG, "").strip().lower() == "true"
