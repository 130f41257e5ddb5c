"""run_companies writes the stage outcomes in groups (real Postgres, the app role).

One pipelined transaction records every company that finished within STATUS_FLUSH_S, instead of
one transaction each; nothing finished is lost when the stage ends, fails or is cancelled, and a
failed write still fails the stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest

from leadgen_core.db.pool import Database
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.context import EnrichContext
from leadgen_core.enrich.runner import run_companies
from leadgen_core.errors import DatabaseError
from leadgen_core.night.stage_status import Outcome
from leadgen_core.settings import Settings
from tests.conftest import add_tenant

DAY = date(2026, 3, 2)
STAGE = "crawled_sites"


def add_companies(owner: Any, n: int) -> list[int]:
    ids = []
    for i in range(n):
        row = owner.execute(
            "INSERT INTO companies (uen, name, content_hash, first_seen, last_seen) "
            "VALUES (%s, %s, '\\x00', %s, %s) RETURNING company_id",
            (f"SW{i:07d}X", f"Writer {i} Pte Ltd", DAY, DAY),
        ).fetchone()
        ids.append(int(row[0]))
    return ids


class Counting:
    """Tenant transactions of DB for TENANT, counted."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db, self.tenant, self.opened = db, tenant, 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[psycopg.Connection]:
        self.opened += 1
        with self.db.tenant_transaction(self.tenant) as conn:
            yield conn


def kit_for(db: Database, tenant: str) -> tuple[Any, Counting]:
    counting = Counting(db, tenant)
    ctx = EnrichContext(
        tenant_id=tenant, day=DAY, run_id=None, settings=Settings(), vendors=VendorConfig(),
        tenant_conn=counting, global_conn=db.global_transaction, concurrency=8,
    )  # fmt: skip
    return types.SimpleNamespace(ctx=ctx, secrets=(), company_seconds=[]), counting


def recorded(db: Database, tenant: str) -> dict[int, str]:
    with db.tenant_transaction(tenant) as conn:
        rows = conn.execute(
            "SELECT company_id, status FROM company_stage_status WHERE run_date = %s AND stage = %s", (DAY, STAGE)
        ).fetchall()
    return {int(c): str(s) for c, s in rows}


def test_forty_outcomes_take_a_few_transactions_not_forty(app_db: Database, owner_conn: Any) -> None:
    add_tenant(owner_conn, "alpha")
    ids = add_companies(owner_conn, 40)
    kit, counting = kit_for(app_db, "alpha")

    async def work(cid: int) -> Outcome:
        await asyncio.sleep(0.01 * (cid % 5))
        if cid % 4 == 0:
            raise RuntimeError("this company's surprise")
        return Outcome(cid, "done")

    outcomes = asyncio.run(run_companies(kit, stage=STAGE, company_ids=ids, work=work))
    expected = {cid: "failed" if cid % 4 == 0 else "done" for cid in ids}
    assert {o.company_id: o.status for o in outcomes} == expected
    assert recorded(app_db, "alpha") == expected
    assert 1 <= counting.opened <= 4  # all finish within ~0.1 s: one or two groups


def test_a_cancelled_stage_still_records_what_finished(app_db: Database, owner_conn: Any) -> None:
    add_tenant(owner_conn, "alpha")
    ids = add_companies(owner_conn, 10)
    quick = set(ids[:6])
    kit, _ = kit_for(app_db, "alpha")

    async def work(cid: int) -> Outcome:
        if cid not in quick:
            await asyncio.sleep(3600)  # still in flight when the run is stopped
        return Outcome(cid, "done")

    async def stopped() -> None:
        task = asyncio.create_task(run_companies(kit, stage=STAGE, company_ids=ids, work=work))
        await asyncio.sleep(0.05)  # the quick ones are done, their group not yet written
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stopped())
    assert recorded(app_db, "alpha") == dict.fromkeys(quick, "done")


def test_a_failed_status_write_fails_the_stage(app_db: Database, owner_conn: Any) -> None:
    add_tenant(owner_conn, "alpha")
    ids = add_companies(owner_conn, 3)
    kit, _ = kit_for(app_db, "ghost")  # no such tenant: the foreign key refuses the rows

    async def work(cid: int) -> Outcome:
        return Outcome(cid, "done")

    with pytest.raises(DatabaseError, match="company_stage_status"):
        asyncio.run(run_companies(kit, stage=STAGE, company_ids=ids, work=work))
