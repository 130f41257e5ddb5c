"""One night per tenant at a time, whoever starts it.

The run queue already keeps two queued runs of one tenant apart (tag limits, dagster.yaml). A
headless `leadgen night` does not pass through the queue, so it checks two things before it runs:

* the Dagster instance (when DAGSTER_HOME names the shared one): a run of the tenant that is
  queued or in progress, launched by the schedule, the UI, a backfill or another `leadgen night`;
* a Postgres advisory lock per tenant, held for the whole command, so two `leadgen night`
  processes (each with its own ephemeral instance, say) never overlap either.

Its own run is recorded in the shared instance with the `leadgen/tenant` tag, so the queue in turn
holds back a scheduled run of the same tenant while it runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg

from leadgen_core.db.catalog import advisory_unlock, try_advisory_lock
from leadgen_core.errors import ConfigError
from leadgen_dagster.tags import PARTITION_TENANT_TAG, TENANT_TAG

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
LOCK_NAMESPACE = "leadgen:night:"


def running_night(instance: dg.DagsterInstance, tenant_id: str) -> str | None:
    """The id of a queued or running run of TENANT_ID's in INSTANCE, if there is one."""
    for tag in (TENANT_TAG, PARTITION_TENANT_TAG):
        records = instance.get_run_records(dg.RunsFilter(tags={tag: tenant_id}, statuses=IN_FLIGHT), limit=1)
        if records:
            return records[0].dagster_run.run_id
    return None


def lock_key(tenant_id: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    digest = hashlib.sha256((LOCK_NAMESPACE + tenant_id).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def exclusive_night(owner_dsn: str, instance: dg.DagsterInstance, tenant_id: str) -> Iterator[None]:
    """Hold TENANT_ID's night lock for the body; refuse at once if another night of it runs."""
    other = running_night(instance, tenant_id)
    if other is not None:
        raise ConfigError(
            f"tenant {tenant_id} already has a night queued or running in Dagster (run {other}); "
            "wait for it to finish, or cancel it in the UI"
        )
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        if not try_advisory_lock(conn, lock_key(tenant_id)):
            raise ConfigError(f"tenant {tenant_id} already has a `leadgen night` running; wait for it to finish")
        try:
            yield
        finally:
            advisory_unlock(conn, lock_key(tenant_id))
