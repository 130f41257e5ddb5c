"""Helpers for tests that materialise real partitions against the session database."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import dagster as dg
import psycopg

from leadgen_core.acra.synth import generate_rows
from leadgen_core.registry.load import LoadCounts, load_rows
from leadgen_core.registry.upsert import upsert_companies
from leadgen_dagster.resources import PostgresResource, SettingsResource, alerts_resource
from leadgen_dagster.vendor_resources import VendorsResource


def resources(app_dsn: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "postgres": PostgresResource(dsn=app_dsn, max_size=4),
        "settings": SettingsResource(),
        "vendors": VendorsResource(),
        "alerts": alerts_resource(),  # built now: set LEADGEN_ALERT_WEBHOOK_URL before calling
    }
    return base | extra


def load_registry(owner_dsn: str, *, rows: int, day: date, seed: int = 11, malformed_rate: float = 0.0) -> LoadCounts:
    """Stage a synthetic registry and upsert it into companies, as the companies asset would."""

    @contextmanager
    def conn():  # type: ignore[no-untyped-def]
        with psycopg.connect(owner_dsn) as c, c.transaction():
            yield c

    counts = load_rows(
        enumerate(generate_rows(rows, seed=seed, malformed_rate=malformed_rate)),
        conn=conn,
        snapshot_date=day,
        source="synth",
    )
    with conn() as c:
        upsert_companies(c, snapshot_date=day)
    return counts


def add_partitions(instance: dg.DagsterInstance, *tenants: str) -> None:
    instance.add_dynamic_partitions("tenants", list(tenants))
