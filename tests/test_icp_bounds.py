"""ICP rules are bounded, and a stage whose every item fails fails its asset.

Pure tests of leadgen_core.icp.rules and scoring weights; the candidate query against the session
Postgres with rules written straight into icp_rules (as a predecessor or a hand edit would); and a
small asset in the real `night_stage` frame materialised by Dagster in process. Nothing simulated.
"""

from __future__ import annotations

import math
from datetime import date

import dagster as dg
import psycopg
import pytest

from leadgen_core.errors import ConfigError
from leadgen_core.icp.candidates import refresh_candidates
from leadgen_core.icp.rules import INT4_MAX, parse_rules
from leadgen_core.night.stagestats import StageCounts
from leadgen_core.scoring.score import MAX_WEIGHT, parse_weights
from leadgen_dagster.partitions import tenant_date_partitions
from leadgen_dagster.resources import PostgresResource
from leadgen_dagster.stage import night_stage
from leadgen_dagster.vendor_resources import VendorsResource
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions

DAY = date(2026, 3, 2)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"employee_range": {"min": INT4_MAX + 1}}, "employee_range.min"),
        ({"employee_range": {"max": 10**30}}, "employee_range.max"),
        ({"employee_range": {"min": -1}}, "employee_range.min"),
        ({"incorporation_year": {"min": 2147483648}}, "incorporation_year.min"),
        ({"incorporation_year": {"max": 1799}}, "incorporation_year.max"),
        ({"weights": {"icp_fit": 1e308}}, "icp_fit"),
        ({"weights": {"icp_fit": MAX_WEIGHT + 0.5}}, "icp_fit"),
        ({"weights": {"age": math.inf}}, "age"),
        ({"weights": {"age": math.nan}}, "age"),
        ({"weights": {"age": -0.1}}, "age"),
        ({"weights": {"age": "1e999"}}, "age"),
    ],
)
def test_out_of_range_rules_are_refused_naming_the_field(extra: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match="invalid ICP rules") as caught:
        parse_rules({"industries": ["software"], **extra})
    assert field in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_bounds_themselves_are_accepted() -> None:
    rules = parse_rules(
        {
            "industries": ["software"],
            "employee_range": {"min": 0, "max": INT4_MAX},
            "incorporation_year": {"min": 1800, "max": 2200},
            "weights": {"icp_fit": MAX_WEIGHT, "age": 0},
        }
    )
    assert rules.employee_range is not None and rules.employee_range.max == INT4_MAX
    assert parse_weights(rules.weights).normalized()["icp_fit"] > 0.99


def test_scoring_weights_have_the_same_bound() -> None:
    with pytest.raises(ConfigError, match="icp_fit"):
        parse_weights({"icp_fit": 1e308, "age": 1e308})


def test_stored_rules_past_int4_are_a_clear_error_not_a_database_crash(clean_db: DbHandle, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha", rules={"industries": ["software"], "employee_range": {"min": 2147483648}})
    with psycopg.connect(clean_db.owner_dsn) as conn, pytest.raises(ConfigError, match=r"employee_range\.min"):
        refresh_candidates(conn, tenant_id="alpha", run_date=DAY)


def test_rules_at_the_int4_bound_run_the_candidate_query(clean_db: DbHandle, owner_conn) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha", rules={"industries": ["software"], "employee_range": {"max": INT4_MAX}})
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert refresh_candidates(conn, tenant_id="alpha", run_date=DAY).candidates == 0


# --- a stage that fails every item fails its asset ---------------------------------------------


def _stage_asset(counts: StageCounts) -> dg.AssetsDefinition:
    @dg.asset(name="toy_stage", partitions_def=tenant_date_partitions)
    def toy_stage(context, postgres: PostgresResource, vendors: VendorsResource):  # type: ignore[no-untyped-def]  # dagster reads the hints
        with night_stage(context, postgres, "toy_stage", vendors=vendors) as stage:
            stage.counts = counts
        return stage.result()

    return toy_stage


@pytest.mark.parametrize(
    ("counts", "succeeds"),
    [
        (StageCounts(items=3, failed=3), False),
        (StageCounts(items=3, done=1, failed=2), True),
        (StageCounts(items=3, degraded=3), True),
        (StageCounts(), True),
    ],
)
def test_a_stage_whose_every_item_failed_fails_the_asset(clean_db: DbHandle, owner_conn, counts, succeeds) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    with dg.instance_for_test() as instance:
        add_partitions(instance, "alpha")
        result = dg.materialize(
            [_stage_asset(counts)],
            partition_key=f"{DAY.isoformat()}|alpha",
            resources={"postgres": PostgresResource(dsn=clean_db.app_dsn, max_size=2), "vendors": VendorsResource()},
            instance=instance,
            raise_on_error=False,
        )
    assert result.success is succeeds
    if not succeeds:
        (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "all 3 items failed" in str(failure.step_failure_data.error)
