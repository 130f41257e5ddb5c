"""The dry run's bottom line: the calls, credits and time a night would take.

Each stage of a dry run reports the billable calls and units it would have made per vendor
(`Spender` in forecast mode). `night_forecast` adds them up and estimates the night's duration
the way `bench.nightly` bounds it: per vendor, the largest of its concurrency bound (calls ×
typical latency ÷ workers), its request-rate bound (calls ÷ documented rate) and, where the
vendor limits units too, its unit-rate bound (units ÷ documented rate: OpenAI's tokens per
minute, which count the prompt plus `max_completion_tokens`, exactly what the dry run's
reservations estimate), summed, plus the crawl (pages × typical page latency ÷ workers). Typical
latencies are the vendors' documented or commonly observed figures; the estimate is a planning
number, not a promise.
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
    "zerobounce": 3.4,  # one /v2/validate: 1-5 s for 96-98% of domains, a 30 s tail (vendors.limits)
    "openai": 2.5,
}


@dataclass
class NightForecast:
    calls: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    seconds_by_vendor: dict[str, float] = field(default_factory=dict)
    bound_by: dict[str, str] = field(default_factory=dict)
    targets: int = 0

    @property
    def seconds(self) -> float:
        return sum(self.seconds_by_vendor.values())

    def lines(self) -> list[str]:
        out = [f"  targets: {self.targets}", f"  {'vendor':<12} {'calls':>7} {'units':>9} {'est. s':>8}  bound by"]
        for vendor in sorted(set(self.calls) | set(self.units) | set(self.seconds_by_vendor)):
            est = self.seconds_by_vendor.get(vendor, 0.0)
            out.append(f"  {vendor:<12} {self.calls[vendor]:>7} {self.units[vendor]:>9} {est:>8.1f}  "
                       f"{self.bound_by.get(vendor, '-')}")  # fmt: skip
        out.append(f"  estimated duration: {self.seconds / 60:.1f} min")
        return out


def vendor_bounds(
    calls: int, *, latency_s: float, workers: int, rate_per_s: float | None, units: int = 0,
    units_per_s: float | None = None,
) -> dict[str, float]:  # fmt: skip
    """Each bound on CALLS (and UNITS) to one vendor: concurrency, request rate, unit rate."""
    if calls <= 0:
        return {}
    out = {"concurrency": calls * latency_s / max(1, workers)}
    if rate_per_s:
        out["requests/limit"] = calls / rate_per_s
    if units_per_s and units > 0:
        out["units/limit"] = units / units_per_s
    return out


def vendor_seconds(
    calls: int, *, latency_s: float, workers: int, rate_per_s: float | None, units: int = 0,
    units_per_s: float | None = None,
) -> float:  # fmt: skip
    """The largest of the concurrency, request-rate and unit-rate bounds for one vendor."""
    bounds = vendor_bounds(calls, latency_s=latency_s, workers=workers, rate_per_s=rate_per_s, units=units,
                           units_per_s=units_per_s)  # fmt: skip
    return max(bounds.values(), default=0.0)


def night_forecast(
    stage_forecasts: Iterable[tuple[Mapping[str, int], Mapping[str, int]]],
    *,
    pages: int,
    workers: int,
    rates: Mapping[str, float],
    unit_rates: Mapping[str, float] | None = None,
    vendor_workers: Mapping[str, int] | None = None,
    targets: int = 0,
) -> NightForecast:
    """Sum (calls, units) per stage and estimate the duration; PAGES is the crawl's page budget.

    RATES are each vendor's documented requests a second, UNIT_RATES its units a second where the
    vendor limits those (OpenAI: TPM ÷ 60), VENDOR_WORKERS the requests in flight where not WORKERS.
    """
    fc = NightForecast(targets=targets)
    for calls, units in stage_forecasts:
        fc.calls.update({k: int(v) for k, v in calls.items()})
        fc.units.update({k: int(v) for k, v in units.items()})
    if pages:
        fc.calls["web"] += pages
    for vendor, n in fc.calls.items():
        bounds = vendor_bounds(
            n, latency_s=TYPICAL_LATENCY_S.get(vendor, 1.0), workers=(vendor_workers or {}).get(vendor, workers),
            rate_per_s=rates.get(vendor), units=fc.units[vendor], units_per_s=(unit_rates or {}).get(vendor),
        )  # fmt: skip
        worst = max(bounds, key=lambda k: bounds[k], default=None)
        fc.seconds_by_vendor[vendor] = bounds[worst] if worst else 0.0
        fc.bound_by[vendor] = worst or "-"
    return fc
