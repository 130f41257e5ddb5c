"""Singapore dates: pure tests of leadgen_core.clock (no database, no clock mocking: fixed instants)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from leadgen_core.clock import sg_date, today_sg


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC), date(2026, 3, 1)),  # 23:59:59 SGT
        (datetime(2026, 3, 1, 16, 0, tzinfo=UTC), date(2026, 3, 2)),  # midnight SGT
        (datetime(2026, 3, 1, 17, 0, tzinfo=UTC), date(2026, 3, 2)),  # the 01:00 SGT night
        (datetime(2026, 3, 2, 1, 0, tzinfo=timezone(timedelta(hours=8))), date(2026, 3, 2)),
        (datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))), date(2026, 3, 2)),
    ],
)
def test_sg_date_is_the_singapore_calendar_day(moment: datetime, expected: date) -> None:
    assert sg_date(moment) == expected
    assert today_sg(moment) == expected


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sg_date(datetime(2026, 3, 1, 17, 0))


def test_today_sg_reads_the_clock_in_singapore() -> None:
    before = sg_date(datetime.now(UTC))
    assert today_sg() in (before, before + timedelta(days=1))


def test_no_other_module_computes_a_local_date() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for package in ("leadgen_core", "leadgen_dagster")
        for path in sorted((root / package).rglob("*.py"))
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "ZoneInfo(" in line or "date.today(" in line
    ]
    assert offenders == []
