"""A claim's rows are ended by their whole primary key (vendor, fingerprint), whatever the
statistics, under the plans the pool's sessions use (plan_cache_mode=force_generic_plan,
leadgen_core/db/pool.py).

spend_open and spend_close ended a call's claims with `fingerprint = ANY(p_claim_keys)`. In a night
the generic plan of that DELETE searched the key by the vendor alone and filtered the fingerprints,
so every claim's end read every index entry of its vendor, dead ones included (sql/049). The
statements checked here are read out of the functions' definitions as the server holds them, then
prepared and explained on a pool connection (the app role, generic plans) with the claims table
in two states: analysed with many claims of one vendor, and analysed empty before they came (a
night's start).
"""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from leadgen_core.db.pool import Database
from leadgen_core.spend.spender import CLOSE_CALL_SQL
from tests.conftest import add_tenant

VENDOR = "zerobounce"


def _fill(owner: psycopg.Connection, *, analyse_first: bool) -> None:
    if analyse_first:
        owner.execute("ANALYZE vendor_inflight")
    owner.execute(
        "INSERT INTO vendor_inflight (vendor, fingerprint, token, owner_tenant, run_id) "
        "SELECT %s, md5(i::text), gen_random_uuid(), 't1', 'r' FROM generate_series(1, 2000) AS i",
        (VENDOR,),
    )
    if not analyse_first:
        owner.execute("ANALYZE vendor_inflight")


def _claim_deletes(owner: psycopg.Connection, function: str) -> list[str]:
    """FUNCTION's DELETEs of vendor_inflight that end the claim's keys, its variables as $1 (the
    vendor), $2 (the token) and $3 (one key)."""
    row = owner.execute("SELECT pg_get_functiondef(%s::regproc)", (function,)).fetchone()
    assert row is not None
    found = [m for m in re.findall(r"DELETE FROM vendor_inflight.*?;", row[0], re.S) if "claim_key" in m]
    out = []
    for statement in found:
        statement = statement.rstrip(";")
        for name, number in (("p_claim_vendor", 1), ("p_vendor", 1), ("p_claim_token", 2), ("claim_key", 3)):
            statement = re.sub(rf"\b{name}\b", f"${number}", statement)
        out.append(statement)
    return out


def _generic_plan(conn: psycopg.Connection, statement: str) -> str:
    assert conn.execute("SHOW plan_cache_mode").fetchone() == ("force_generic_plan",)
    name = f"q{uuid.uuid4().hex[:8]}"
    conn.execute(f"PREPARE {name} (text, uuid, text) AS {statement}")
    try:
        rows = conn.execute(f"EXPLAIN (COSTS OFF) EXECUTE {name} ('{VENDOR}', gen_random_uuid(), md5('7'))").fetchall()
    finally:
        conn.execute(f"DEALLOCATE {name}")
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("analyse_first", [True, False], ids=["analysed_empty", "analysed_full"])
@pytest.mark.parametrize("function", ["spend_open", "spend_close"])
def test_the_functions_end_a_claim_by_its_whole_key(
    app_db: Database, owner_conn: psycopg.Connection, function: str, analyse_first: bool
) -> None:
    _fill(owner_conn, analyse_first=analyse_first)
    (statement,) = _claim_deletes(owner_conn, function)
    with app_db.global_transaction() as conn:
        plan = _generic_plan(conn, statement)
    conds = re.findall(r"Index Cond: (.*)", plan)
    assert conds and all("vendor = $1" in c and "fingerprint = $3" in c for c in conds), plan


def test_a_claim_of_several_keys_is_ended_whole_and_only_its_own(
    app_db: Database, owner_conn: psycopg.Connection
) -> None:
    # spend_close ends each key of the claim (a batch's), and no other claim's rows
    add_tenant(owner_conn, "t1")
    _fill(owner_conn, analyse_first=False)
    token = str(uuid.uuid4())
    keys = ["k-a", "k-b", "k-c"]
    owner_conn.execute(
        "INSERT INTO vendor_inflight (vendor, fingerprint, token, owner_tenant, run_id) "
        "SELECT %s, k, %s, 't1', 'r' FROM unnest(%s::text[]) AS k",
        (VENDOR, token, keys),
    )
    with app_db.global_statement() as conn:
        conn.execute(CLOSE_CALL_SQL, ("t1", VENDOR, 0, "2026-12-07", 0, VENDOR, token, keys[:2], None, None, None,
                                      None, None))  # fmt: skip
    left = {r[0] for r in owner_conn.execute("SELECT fingerprint FROM vendor_inflight WHERE token = %s", (token,))}
    assert left == {"k-c"}
    assert owner_conn.execute("SELECT count(*) FROM vendor_inflight").fetchone() == (2001,)
