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

The stages' estimates are upper bounds (a prompt's characters ÷ 3 plus the completion limit, the
most contacts Lusha could reveal), and a dry run cannot know what it never fetches: the contacts
Lusha would find, hence the addresses ZeroBounce would check. So once the tenant has real nights
behind it, `night_forecast` (given `night_history`) replaces them with what those nights actually cost per target (the
ledger, `vendor_usage`, of the days they ran, divided by their targets) and took per target
(their first stage's start to their last stage's end, `run_stage_stats`), times tonight's
targets; the vendor-limit bound still holds as a floor on the duration (a night far larger than
the ones before meets the limits first). `night_history` reads those nights.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import psycopg

from leadgen_core.settings import TIMEZONE

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
    history_seconds: float = 0.0  # set with a history: the recent nights' seconds per target x targets

    @property
    def limits_seconds(self) -> float:
        """The bound from the vendor limits and typical latencies."""
        return sum(self.seconds_by_vendor.values())

    @property
    def seconds(self) -> float:
        return max(self.limits_seconds, self.history_seconds)

    def lines(self) -> list[str]:
        out = [f"  targets: {self.targets}", f"  {'vendor':<12} {'calls':>7} {'units':>9} {'est. s':>8}  bound by"]
        for vendor in sorted(set(self.calls) | set(self.units) | set(self.seconds_by_vendor)):
            est = self.seconds_by_vendor.get(vendor, 0.0)
            out.append(f"  {vendor:<12} {self.calls[vendor]:>7} {self.units[vendor]:>9} {est:>8.1f}  "
                       f"{self.bound_by.get(vendor, '-')}")  # fmt: skip
        basis = "recent nights' time per target" if self.history_seconds > self.limits_seconds else "vendor limits"
        out.append(f"  estimated duration: {self.seconds / 60:.1f} min ({basis})")
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
    time_scale: float = 1.0,
    history: NightHistory | None = None,
) -> NightForecast:
    """Sum (calls, units) per stage and estimate the duration; PAGES is the crawl's page budget.

    RATES are each vendor's documented requests a second, UNIT_RATES its units a second where the
    vendor limits those (OpenAI: TPM ÷ 60), VENDOR_WORKERS the requests in flight where not WORKERS.
    TIME_SCALE divides the typical latencies (the sandbox's `--time-scale`; RATES are then scaled).
    HISTORY (`night_history`) replaces the stages' upper bounds with what recent nights cost.
    """
    fc = NightForecast(targets=targets)
    for calls, units in stage_forecasts:
        fc.calls.update({k: int(v) for k, v in calls.items()})
        fc.units.update({k: int(v) for k, v in units.items()})
    learn_from(fc, history)
    if pages:
        fc.calls["web"] += pages
    for vendor, n in fc.calls.items():
        bounds = vendor_bounds(
            n, latency_s=TYPICAL_LATENCY_S.get(vendor, 1.0) / time_scale,
            workers=(vendor_workers or {}).get(vendor, workers),
            rate_per_s=rates.get(vendor), units=fc.units[vendor], units_per_s=(unit_rates or {}).get(vendor),
        )  # fmt: skip
        worst = max(bounds, key=lambda k: bounds[k], default=None)
        fc.seconds_by_vendor[vendor] = bounds[worst] if worst else 0.0
        fc.bound_by[vendor] = worst or "-"
    if history is not None and fc.targets > 0:
        fc.history_seconds = history.seconds_per_target * fc.targets
    return fc


HISTORY_NIGHTS = 7  # the tenant's last complete real nights a forecast learns from

# The tenant's last complete nights before DAY: targets, first start to last end, and the clock
# day (Singapore) each ran on, which is the ledger's usage_date. RLS: the tenant's rows only.
NIGHTS_SQL = """
SELECT run_date, max(items) FILTER (WHERE stage = 'daily_targets') AS targets,
       extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds,
       (min(started_at) AT TIME ZONE %(tz)s)::date AS clock_day
FROM run_stage_stats
WHERE tenant_id = %(tenant)s AND run_date < %(day)s
GROUP BY run_date
HAVING bool_and(finished_at IS NOT NULL) AND max(items) FILTER (WHERE stage = 'daily_targets') > 0
ORDER BY run_date DESC
LIMIT %(nights)s
"""
# Every night that ran on those clock days shares their ledger, complete or not.
DAY_TARGETS_SQL = """
SELECT coalesce(sum(items), 0) FROM run_stage_stats
WHERE tenant_id = %(tenant)s AND stage = 'daily_targets'
    AND (started_at AT TIME ZONE %(tz)s)::date = ANY(%(days)s)
"""
LEDGER_SQL = """
SELECT vendor, sum(units)::bigint, sum(calls)::bigint FROM vendor_usage
WHERE tenant_id = %(tenant)s AND usage_date = ANY(%(days)s)
GROUP BY vendor
"""


@dataclass(frozen=True)
class NightHistory:
    """What the tenant's recent real nights cost and took, per target."""

    nights: int
    units_per_target: Mapping[str, float]
    calls_per_target: Mapping[str, float]
    seconds_per_target: float


def night_history(
    conn: psycopg.Connection, *, tenant_id: str, day: date, nights: int = HISTORY_NIGHTS
) -> NightHistory | None:
    """The tenant's last NIGHTS complete real nights before DAY (a tenant transaction); None before its first."""
    params: dict[str, object] = {"tenant": tenant_id, "day": day, "nights": nights, "tz": TIMEZONE}
    rows = conn.execute(NIGHTS_SQL, params).fetchall()
    if not rows:
        return None
    targets = sum(int(r[1]) for r in rows)
    seconds = sum(float(r[2]) for r in rows)
    days = sorted({r[3] for r in rows})
    row = conn.execute(DAY_TARGETS_SQL, {**params, "days": days}).fetchone()
    day_targets = int(row[0]) if row and row[0] else targets
    ledger = conn.execute(LEDGER_SQL, {**params, "days": days}).fetchall()
    return NightHistory(
        nights=len(rows),
        units_per_target={str(v): int(u) / day_targets for v, u, _ in ledger},
        calls_per_target={str(v): int(c) / day_targets for v, _, c in ledger},
        seconds_per_target=seconds / targets,
    )


def learn_from(fc: NightForecast, history: NightHistory | None) -> None:
    """Each paid vendor's units and calls as the HISTORY's per target times FC's targets."""
    if history is None or fc.targets <= 0:
        return
    for vendor, per_target in history.units_per_target.items():
        fc.units[vendor] = round(per_target * fc.targets)
        fc.calls[vendor] = round(history.calls_per_target.get(vendor, 0.0) * fc.targets)
