"""Staggered tenant starts (leadgen_core.night.stagger) and the run tag that carries them: pure, nothing simulated.

The schedule's use of them is tested in test_orchestration::test_schedule_tick_at_0100_sgt.
"""

from __future__ import annotations

import pytest

from leadgen_core.night.stagger import SLA_SHARE, start_offsets
from leadgen_dagster.tags import START_AFTER_TAG, start_after_s


def test_tenants_that_start_together_are_offset_in_a_stable_order() -> None:
    offsets = start_offsets(["c", "a", "b"], stagger_s=60, concurrency=3, sla_s=90 * 60)
    assert offsets == {"a": 0.0, "b": 60.0, "c": 120.0}


def test_tenants_queued_behind_the_concurrent_runs_wait_nothing() -> None:
    offsets = start_offsets([f"t{i}" for i in range(5)], stagger_s=60, concurrency=3, sla_s=90 * 60)
    assert [offsets[f"t{i}"] for i in range(5)] == [0.0, 60.0, 120.0, 0.0, 0.0]


def test_the_spread_stays_within_a_share_of_the_sla_so_no_tenant_starves() -> None:
    offsets = start_offsets([f"t{i:02d}" for i in range(10)], stagger_s=600, concurrency=10, sla_s=90 * 60)
    assert max(offsets.values()) == pytest.approx(SLA_SHARE * 90 * 60)
    assert sorted(offsets.values()) == pytest.approx([i * SLA_SHARE * 90 * 60 / 9 for i in range(10)])


@pytest.mark.parametrize("tenants", [[], ["only"]])
def test_one_tenant_or_none_starts_at_once(tenants: list[str]) -> None:
    assert set(start_offsets(tenants, stagger_s=60, concurrency=3, sla_s=5400).values()) <= {0.0}


@pytest.mark.parametrize(("raw", "expected"), [("60", 60.0), ("0", 0.0), ("-5", 0.0), ("nan", 0.0), ("inf", 0.0),
                                               ("soon", 0.0), ("", 0.0)])  # fmt: skip
def test_the_start_tag_is_read_safely(raw: str, expected: float) -> None:
    assert start_after_s({START_AFTER_TAG: raw}) == expected
    assert start_after_s({}) == 0.0
