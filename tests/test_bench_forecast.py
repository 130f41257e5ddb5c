"""`bench.nightly --forecast`'s comparison (bench.nightly.forecast_accuracy): pure arithmetic.

Each tenant's dry-run forecast (units per vendor, seconds scaled by the sandbox's time scale) is
held against its real night (the ledger's units, its stage span); the summary sums every tenant
first, so one tenant's miss is not hidden by an average of ratios.
"""

from __future__ import annotations

import pytest

from bench.nightly import forecast_accuracy


def forecast(units: dict[str, int], seconds: float, *, history: float = 0.0, limits: float = 0.0) -> dict[str, object]:
    return {"units": units, "seconds": seconds, "history_seconds": history, "limits_seconds": limits,
            "history_nights": 1 if history else 0, "targets": 100, "calls": {}}  # fmt: skip


def test_errors_are_forecast_over_real_minus_one_in_unscaled_seconds() -> None:
    out = forecast_accuracy(
        {"t1": forecast({"openai": 1_100, "lusha": 40}, 60.0, history=60.0, limits=20.0)},
        {"t1": {"openai": 1_000, "lusha": 50}},
        {"t1": 50.0},
        time_scale=10.0,
    )
    assert out["forecast_errors"] == {"lusha": -0.2, "openai": 0.1, "duration_s": 0.2}
    assert out["forecast_within_15pct"] == {"lusha": False, "openai": True, "duration_s": False}
    rows = out["forecast"]["t1"]  # type: ignore[index]
    assert rows["duration_s"] == {"forecast": 600.0, "real": 500.0, "error": 0.2}
    assert rows["basis"] == "history"


def test_tenants_are_summed_before_the_error_is_taken() -> None:
    out = forecast_accuracy(
        {"t1": forecast({"tavily": 90}, 10.0, limits=10.0), "t2": forecast({"tavily": 30}, 10.0, limits=10.0)},
        {"t1": {"tavily": 100}, "t2": {"tavily": 20}},
        {"t1": 10.0, "t2": 10.0},
        time_scale=1.0,
    )
    assert out["forecast_errors"]["tavily"] == pytest.approx(0.0)  # type: ignore[index]
    assert out["forecast"]["t2"]["tavily"]["error"] == 0.5  # type: ignore[index]
    assert out["forecast"]["t1"]["basis"] == "vendor limits"  # type: ignore[index]


def test_a_vendor_the_night_did_not_pay_has_no_error_but_is_shown() -> None:
    out = forecast_accuracy(
        {"t1": forecast({"zerobounce": 12, "openai": 100}, 5.0)}, {"t1": {"openai": 100}}, {"t1": 5.0}, time_scale=1.0
    )
    assert "zerobounce" not in out["forecast_errors"]  # type: ignore[operator]
    assert out["forecast"]["t1"]["zerobounce"] == {"forecast": 12, "real": 0, "error": None}  # type: ignore[index]
