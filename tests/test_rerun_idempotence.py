"""Re-runs are idempotent: a partition's targets are fixed by its first real night, and its
lead_scores are replaced, never appended.

Real: Postgres (tenant rows as the application role, under RLS), Dagster materialising the
`icp_candidates`, `daily_targets` and `lead_scores` partitions on a test instance. Simulated: the
registry (a synthetic ACRA extract); no vendor is configured, so the scoring stage writes its
deterministic template rationales (the scores themselves are the real scoring code).
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import psycopg
import pytest

from leadgen_dagster.assets.crm import lead_scores
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry, resources

D = date(2026, 3, 10)
TECH = {"industries": ["software", "information technology"], "incorporation_year": {"min": 1990, "max": 2025}}


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.instance_for_test() as inst:
        yield inst


def night(db: DbHandle, instance: dg.DagsterInstance, day: date, **tags: str) -> dg.ExecuteInProcessResult:
    """Targeting, then scoring (lead_scores depends on email_verifications, not on daily_targets,
    so the two runs keep the order a whole night has)."""
    results = [
        dg.materialize(
            step,
            partition_key=f"{day.isoformat()}|alpha",
            resources=resources(db.app_dsn),
            instance=instance,
            tags=tags or None,
        )
        for step in ([icp_candidates, daily_targets], [lead_scores])
    ]
    assert all(r.success for r in results)
    return results[0]


def snapshot(db: DbHandle, day: date) -> tuple[list[int], list[tuple[int, float, str]]]:
    with psycopg.connect(db.owner_dsn) as conn:
        targets = [r[0] for r in conn.execute(
            "SELECT company_id FROM daily_targets WHERE tenant_id = 'alpha' AND run_date = %s ORDER BY priority", (day,)
        )]  # fmt: skip
        scores = conn.execute(
            "SELECT company_id, score, bucket FROM lead_scores WHERE tenant_id = 'alpha' AND run_date = %s "
            "ORDER BY company_id",
            (day,),
        ).fetchall()
    return targets, scores


def test_d_then_older_dates_then_d_again_keeps_d_identical(clean_db: DbHandle, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SCHED_DAILY_CAP_PER_TENANT", "15")
    load_registry(clean_db.owner_dsn, rows=3000, day=D)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, "alpha", rules=TECH)
    add_partitions(instance, "alpha")

    night(clean_db, instance, D)
    targets_d, scores_d = snapshot(clean_db, D)
    assert len(targets_d) == 15 and [s[0] for s in scores_d] == sorted(targets_d)
    # older nights score other companies (and D's own ones again): a fresh selection for D would
    # now put D's scored companies at the back and pick a second set
    for older in (D - timedelta(days=1), D - timedelta(days=2)):
        night(clean_db, instance, older)
        assert len(snapshot(clean_db, older)[0]) == 15

    again = night(clean_db, instance, D)
    assert snapshot(clean_db, D) == (targets_d, scores_d)  # same targets, same 15 scores, not 30
    assert again.asset_materializations_for_node("daily_targets")[0].metadata["targets_kept"].value is True

    # an explicit reselection picks afresh, and D's scores follow: only the new targets' remain
    night(clean_db, instance, D, **{"leadgen/reselect": "true"})
    new_targets, new_scores = snapshot(clean_db, D)
    assert set(new_targets) != set(targets_d)  # the older nights' scores moved D's old set back
    assert len(new_targets) == 15 and [s[0] for s in new_scores] == sorted(new_targets)
