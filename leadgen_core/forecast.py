"""The dry run's bottom line: the calls, credits and time a night would take.

Each stage of a dry run reports the billable calls and units it would have made per vendor
(`Spender` in forecast mode). `night_forecast` adds them up and estimates the night's duration
the way `bench.nightly` bounds it: per vendor, the larger of its concurrency bound (calls ×
typical latency ÷ workers) and its rate-limit bound (calls ÷ documented rate), summed, plus the
crawl (pages × typical page latency ÷ workers). Typical latencies are the vendors' documented or
commonly observed figures; the estimate is a planning number, not a promise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# seconds per call: a web page, a Tavily search, a Lusha lookup, a ZeroBounce batch, an extraction
TYPICAL_LATENCY_S: Mapping[str, float] = {
    "web": 0.15,
    "tavily": 0.8,
    "lusha": 0.4,
    "zerobounce": 1.5,
    "openai": 2.5,
}


@dataclass
class NightForecast:
    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    seconds_by_vendor: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_vendor.values())

    def lines(self) -> list[str]:
        out = [f"  {'vendor':<12} {'calls':>7} {'units':>9} {'est. s':>8}"]
        for vendor in sorted(set(self.calls) | set(self.units) | set(self.seconds_by_vendor)):
            est = self.seconds_by_vendor.get(vendor, 0.0)
            out.append(f"  {vendor:<12} {self.calls[vendor]:>7} {self.units[vendor]:>9} {est:>8.1f}")
        out.append(f"  estimated duration: {self.seconds / 60:.1f} min")
        return out


def vendor_seconds(calls: int, *, latency_s: float, workers: int, rate_per_s: float | None) -> float:
    """The larger of the concurrency bound and the rate-limit bound for CALLS to one vendor."""
    if calls <= 0:
        return 0.0
    concurrency_bound = calls * latency_s / max(1, workers)
    rate_bound = calls / rate_per_s if rate_per_s else 0.0
    return max(concurrency_bound, rate_bound)


def night_forecast(
    stage_forecasts: Iterable[tuple[Mapping[str, int], Mapping[str, int]]],
    *,
    pages: int,
    workers: int,
    rates: Mapping[str, float],
) -> NightForecast:
    """Sum (calls, units) per stage and estimate the duration; PAGES is the crawl's page budget."""
    fc = NightForecast()
    for calls, units in stage_forecasts:
        fc.calls.update({k: int(v) for k, v in calls.items()})
        fc.units.update({k: int(v) for k, v in units.items()})
    if pages:
        fc.calls["web"] += pages
    for vendor, n in fc.calls.items():
        fc.seconds_by_vendor[vendor] = vendor_seconds(
            n, latency_s=TYPICAL_LATENCY_S.get(vendor, 1.0), workers=workers, rate_per_s=rates.get(vendor)
        )
    return fc
