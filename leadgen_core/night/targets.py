"""Daily target selection: the capped, prioritised run manifest.

Priority follows the predecessor: companies never scored for this tenant first, then those
without contacts, then the most recently seen. Companies the tenant has suppressed
(`leadgen_core.suppression`) are left out. The priority keys are stored on each
candidate when the candidate set is built (sql/007), so selection walks one index and stops at
the cap. A night keeps the manifest its date already has (fixed by the first real night); an
explicit reselection replaces it, and drops the date's scores and features of companies no longer
in it, so a date's lead_scores are only ever its current targets'.

A dry run stores nothing (`dry_run_targets`): it forecasts the date's stored manifest when a real
run has selected one, else the manifest the night would select, computed inside a savepoint that
is rolled back, so neither `icp_candidates` nor `daily_targets` change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from leadgen_core.icp.candidates import refresh_candidates
from leadgen_core.suppression import COMPANY_SUPPRESSED_SQL

CAP_OVERRIDE_SQL = "SELECT daily_cap FROM tenant_budgets WHERE tenant_id = %s AND vendor = 'targets'"
DELETE_TARGETS_SQL = "DELETE FROM daily_targets WHERE tenant_id = %s AND run_date = %s"

# The tenant's candidates for the date (`ic`, with their company `c`) that it has not suppressed
# (the one rule of leadgen_core.suppression: website domain and its parents, listed addresses).
ELIGIBLE_CANDIDATES_SQL = f"""
    FROM icp_candidates ic
    JOIN companies c ON c.company_id = ic.company_id
    WHERE ic.tenant_id = %(tenant)s AND ic.run_date = %(run_date)s
      AND NOT {COMPANY_SUPPRESSED_SQL}
"""  # noqa: S608 - a constant SQL fragment, values are bound

SELECT_TARGETS_SQL = f"""
INSERT INTO daily_targets (tenant_id, run_date, company_id, priority, run_id)
SELECT %(tenant)s, %(run_date)s, company_id,
       row_number() OVER (ORDER BY has_score, has_contacts, last_seen DESC, company_id), %(run_id)s
FROM (
    SELECT ic.company_id, ic.has_score, ic.has_contacts, ic.last_seen
    {ELIGIBLE_CANDIDATES_SQL}
    ORDER BY ic.has_score, ic.has_contacts, ic.last_seen DESC, ic.company_id
    LIMIT %(cap)s
) ranked
"""  # noqa: S608 - a constant SQL fragment, values are bound


# A kept manifest still never holds a company the tenant has suppressed since: suppression wins.
DROP_SUPPRESSED_TARGETS_SQL = f"""
DELETE FROM daily_targets t USING companies c
WHERE t.tenant_id = %(tenant)s AND t.run_date = %(run_date)s AND c.company_id = t.company_id
  AND {COMPANY_SUPPRESSED_SQL}
"""  # noqa: S608 - a constant SQL fragment, values are bound

# After a fresh selection replaces a date's manifest, what was derived from the old manifest
# goes: the date's scores and features are only ever those of its current targets (never appended).
PRUNE_SCORES_SQL = """
DELETE FROM lead_scores s WHERE s.tenant_id = %(tenant)s AND s.run_date = %(run_date)s
  AND NOT EXISTS (SELECT 1 FROM daily_targets t
                  WHERE t.tenant_id = s.tenant_id AND t.run_date = s.run_date AND t.company_id = s.company_id)
"""
# ... and the per-company stage outcomes of companies no longer targeted, so a company that comes
# back in a later reselection is worked (and scored) again rather than taken as done.
PRUNE_STATUS_SQL = """
DELETE FROM company_stage_status c WHERE c.tenant_id = %(tenant)s AND c.run_date = %(run_date)s
  AND NOT EXISTS (SELECT 1 FROM daily_targets t
                  WHERE t.tenant_id = c.tenant_id AND t.run_date = c.run_date AND t.company_id = c.company_id)
"""
PRUNE_FEATURES_SQL = """
DELETE FROM lead_features f WHERE f.tenant_id = %(tenant)s AND f.run_date = %(run_date)s
  AND NOT EXISTS (SELECT 1 FROM daily_targets t
                  WHERE t.tenant_id = f.tenant_id AND t.run_date = f.run_date AND t.company_id = f.company_id)
"""


@dataclass(frozen=True)
class TargetResult:
    selected: int
    cap: int
    kept: bool = False  # the partition's existing manifest was kept (no fresh selection)


def effective_cap(conn: psycopg.Connection, *, tenant_id: str, default_cap: int) -> int:
    row = conn.execute(CAP_OVERRIDE_SQL, (tenant_id,)).fetchone()
    return int(row[0]) if row else default_cap


def select_targets(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    run_date: date,
    default_cap: int,
    run_id: str | None,
    reselect: bool = True,
) -> TargetResult:
    """The date's manifest. With RESELECT false, a manifest the date already has is kept: a
    partition's targets are fixed by its first real night, whatever other dates did since (their
    scores and contacts would otherwise reorder the priority and pick a second set). Only
    companies suppressed since then leave it; an empty manifest is not fixed (nothing was worked)."""
    cap = effective_cap(conn, tenant_id=tenant_id, default_cap=default_cap)
    if not reselect and target_ids(conn, tenant_id=tenant_id, run_date=run_date):
        conn.execute(DROP_SUPPRESSED_TARGETS_SQL, {"tenant": tenant_id, "run_date": run_date})
        return TargetResult(len(target_ids(conn, tenant_id=tenant_id, run_date=run_date)), cap, kept=True)
    conn.execute(DELETE_TARGETS_SQL, (tenant_id, run_date))
    # A capped index walk: JIT compilation would cost more than the query (measured in bench).
    conn.execute("SET LOCAL jit = off")
    cur = conn.execute(SELECT_TARGETS_SQL, {"tenant": tenant_id, "run_date": run_date, "run_id": run_id, "cap": cap})
    selected = cur.rowcount
    conn.execute(PRUNE_SCORES_SQL, {"tenant": tenant_id, "run_date": run_date})
    conn.execute(PRUNE_FEATURES_SQL, {"tenant": tenant_id, "run_date": run_date})
    conn.execute(PRUNE_STATUS_SQL, {"tenant": tenant_id, "run_date": run_date})
    return TargetResult(selected, cap)


def target_ids(conn: psycopg.Connection, *, tenant_id: str, run_date: date) -> list[int]:
    rows = conn.execute(
        "SELECT company_id FROM daily_targets WHERE tenant_id = %s AND run_date = %s ORDER BY priority",
        (tenant_id, run_date),
    ).fetchall()
    return [int(r[0]) for r in rows]


def dry_run_targets(conn: psycopg.Connection, *, tenant_id: str, run_date: date, default_cap: int) -> list[int]:
    """The manifest a dry run forecasts, in priority order, leaving every tenant table as it was."""
    stored = target_ids(conn, tenant_id=tenant_id, run_date=run_date)
    if stored:
        return stored
    # A real selection, undone: the same rules and cap as the night, and nothing left behind.
    with conn.transaction(force_rollback=True):
        refresh_candidates(conn, tenant_id=tenant_id, run_date=run_date)
        select_targets(conn, tenant_id=tenant_id, run_date=run_date, default_cap=default_cap, run_id=None)
        return target_ids(conn, tenant_id=tenant_id, run_date=run_date)
