"""The benchmark's vendor floor (bench.vendor_floor): pure arithmetic, nothing simulated or stored.

A refilling bucket costs work ÷ limit of its period, a fixed quota window only the windows after
the first; the floor adds the shortest fill before a bucket's first stage and drain after its last.
"""

from __future__ import annotations

import pytest

from bench.night_bound import STAGES
from bench.vendor_floor import HOUR, MINUTE, Bucket, buckets, vendor_floor


@pytest.mark.parametrize(
    ("bucket", "work", "scale", "expected"),
    [
        (Bucket("openai", "tokens", 2_000_000, MINUTE, False, ("openai_extract",)), 3_000_000, 1.0, 90.0),
        (Bucket("openai", "tokens", 2_000_000, MINUTE, False, ("openai_extract",)), 3_000_000, 5.0, 18.0),
        (Bucket("lusha", "requests", 1_800, HOUR, True, ("lusha_prospecting",)), 1_800, 1.0, 0.0),
        (Bucket("lusha", "requests", 1_800, HOUR, True, ("lusha_prospecting",)), 1_801, 1.0, 3_600.0),
        (Bucket("lusha", "requests", 1_800, HOUR, True, ("lusha_prospecting",)), 5_000, 1.0, 7_200.0),
    ],
)
def test_a_bucket_passes_work_at_its_documented_limit(bucket: Bucket, work: int, scale: float, expected: float) -> None:
    assert bucket.seconds(work, scale=scale) == pytest.approx(expected)


def test_the_floor_is_the_busiest_bucket_plus_the_shortest_fill_and_drain() -> None:
    stage_floors = {
        "a": {s: 10.0 for s in STAGES},  # 10 s a stage
        "b": {s: (1.0 if s == "crawled_sites" else 20.0) for s in STAGES},  # reaches extraction first
    }
    work = {
        "openai_extract": {"requests": 1_000, "tokens": 4_000_000},
        "openai_rationale": {"requests": 100, "tokens": 100_000},
    }
    floor, detail = vendor_floor(
        buckets(openai_tier=2, lusha_plan="premium", tavily_key_kind="production", zerobounce_mode="single"),
        work,
        stage_floors=stage_floors,
        scale=1.0,
    )
    top = detail[0]
    assert top.bucket == "openai:tokens/min"
    assert top.work == 4_100_000
    assert top.through_s == pytest.approx(123.0)  # 4.1M tokens at 2M a minute (tier 2)
    # extraction is the 4th stage: b gets there after 20 + 20 + 1; a after 30
    assert top.fill_s == pytest.approx(30.0)
    # rationales (lead_scores) are the 7th of 8 stages: one stage (odoo_sync) after, 10 s for a
    assert top.drain_s == pytest.approx(10.0)
    assert floor == pytest.approx(163.0)
    assert all(d.bucket.split(":")[0] == "openai" for d in detail)  # only buckets with work count


def test_tier_one_adds_its_daily_request_quota() -> None:
    names = {b.name for b in buckets(openai_tier=1, lusha_plan="scale", tavily_key_kind="development",
                                     zerobounce_mode="batch")}  # fmt: skip
    assert {"openai:requests/day", "lusha:requests/h", "zerobounce:requests/min"} <= names
    assert "zerobounce:requests/10s" not in names
