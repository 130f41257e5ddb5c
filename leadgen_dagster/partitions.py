"""The partitions definitions, defined once and imported everywhere else.

Dates are Singapore calendar days; `end_offset=1` makes today's partition exist, so the 01:00
night can process the day it belongs to. Tenants are dynamic: `tenant_partitions_sensor` keeps
them equal to the active tenants. Multi-partition keys print as `date|tenant`.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from leadgen_core.clock import today_sg
from leadgen_core.db.pool import TENANT_ID_RE
from leadgen_core.errors import PartitionKeyError
from leadgen_core.settings import TIMEZONE

START_DATE = "2026-01-01"
TENANTS_PARTITION = "tenants"

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE, end_offset=1)
tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANTS_PARTITION)
tenant_date_partitions = dg.MultiPartitionsDefinition({"date": daily_partitions, "tenant": tenant_partitions})


def parse_tenant_date(key: object) -> tuple[str, date]:
    """(tenant_id, date) of a `date|tenant` key, or PartitionKeyError saying what is wrong."""
    text = str(key)
    try:
        dims = tenant_date_partitions.get_partition_key_from_str(text).keys_by_dimension
        tenant, day = dims["tenant"], date.fromisoformat(dims["date"])
    except (KeyError, ValueError, dg.DagsterInvariantViolationError) as exc:
        raise PartitionKeyError(f"partition key {text!r} is not of the form YYYY-MM-DD|tenant-id") from exc
    if not TENANT_ID_RE.match(tenant):
        raise PartitionKeyError(f"partition key {text!r} names an invalid tenant id {tenant!r}")
    return tenant, day


def parse_date(key: object) -> date:
    try:
        return date.fromisoformat(str(key))
    except ValueError as exc:
        raise PartitionKeyError(f"partition key {key!r} is not a YYYY-MM-DD date") from exc


def tenant_date_key(tenant_id: str, day: date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day.isoformat(), "tenant": tenant_id})


def check_night_date(day: date) -> date:
    """DAY when the date partitions hold it (START_DATE to today in Singapore), else PartitionKeyError."""
    if not daily_partitions.has_partition_key(day.isoformat()):
        raise PartitionKeyError(
            f"no night for {day}: nights run from {START_DATE} to today in Singapore ({today_sg()})"
        )
    return day
