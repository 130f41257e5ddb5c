"""Resources: thin adapters that build leadgen_core clients and hand them over."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import dagster as dg
import psycopg
from pydantic import Field, PrivateAttr

from leadgen_core.db import steps as db_steps
from leadgen_core.db.pool import Database
from leadgen_core.errors import PartitionKeyError
from leadgen_core.settings import Settings
from leadgen_core.tenants import directory

ALERT_WEBHOOK_ENV = "LEADGEN_ALERT_WEBHOOK_URL"


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go. The webhook URL is a secret (it is the credential): set only as
    dg.EnvVar(LEADGEN_ALERT_WEBHOOK_URL), so Dagster shows the variable's name, never its value."""

    webhook_url: str | None = Field(
        default=None, description="Slack-compatible webhook; set only as dg.EnvVar('LEADGEN_ALERT_WEBHOOK_URL')."
    )

    def url(self) -> str | None:
        return self.webhook_url or None


def alerts_resource() -> AlertsResource:
    """Wired to the variable when it is set as the code location loads (an unset EnvVar fails)."""
    return (
        AlertsResource(webhook_url=dg.EnvVar(ALERT_WEBHOOK_ENV))
        if os.environ.get(ALERT_WEBHOOK_ENV)
        else AlertsResource()
    )


class SettingsResource(dg.ConfigurableResource):
    """The one settings model, read from the environment of the run worker."""

    def get(self) -> Settings:
        return Settings()


Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


@dataclass(frozen=True)
class StageConnections:
    """The `tenant_conn`, `global_conn`, `global_statement` (one statement on the shared tables,
    outside a transaction block) and `tenant_pipe` (a tenant transaction pipelined with its
    statements: one round trip) of a stage's context."""

    tenant_conn: Connect
    global_conn: Connect
    global_statement: Connect
    tenant_pipe: Connect


class PostgresResource(dg.ConfigurableResource):
    """The pipeline's pool, connected as the application role (RLS in force)."""

    dsn: str = Field(description="DSN of the application role (LEADGEN_APP_DATABASE_URL).")
    max_size: int = Field(default=6, description="Pool size: company workers share it (LEADGEN_POOL_MAX_SIZE).")

    _db: Database | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._db = Database(self.dsn, min_size=1, max_size=self.max_size, name="leadgen-dagster").open()
        db_steps.configure(self.dsn)  # a local server: the stages' transactions run on their loop (LEADGEN_DB_STEPS)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> Database:
        if self._db is None:  # used outside a run (sensors build their own short-lived pool)
            self._db = Database(self.dsn, min_size=1, max_size=2, name="leadgen-dagster").open()
        return self._db

    # The Database's own context managers, returned as they are: no wrapper frame on every transaction.
    def tenant(self, tenant_id: str, *, operation: str) -> AbstractContextManager[psycopg.Connection]:
        return self.db.tenant_transaction(tenant_id, operation=operation)

    def shared(self, *, operation: str) -> AbstractContextManager[psycopg.Connection]:
        return self.db.global_transaction(operation=operation)

    def stage_connections(self, tenant_id: str, *, operation: str) -> StageConnections:
        """A night stage's four ways to the database, bound to the pool once: a stage opens tens of
        thousands of them, and each lookup of `db` goes through pydantic's `__getattr__` for a
        private attribute (~1% of a run worker's CPU when it was looked up every time)."""
        db = self.db
        return StageConnections(
            tenant_conn=functools.partial(db.tenant_transaction, tenant_id, operation=operation),
            global_conn=functools.partial(db.global_transaction, operation=operation),
            global_statement=functools.partial(db.global_statement, operation=operation),
            tenant_pipe=functools.partial(db.tenant_pipeline, tenant_id, operation=operation),
        )

    def require_tenant(self, tenant_id: str) -> None:
        """Refuse a partition whose tenant is not in the directory."""
        with self.shared(operation="tenant lookup") as conn:
            known = {t.tenant_id for t in directory(conn)}
        if tenant_id not in known:
            raise PartitionKeyError(f"tenant {tenant_id!r} is not a known tenant id (see `leadgen tenants list`)")
