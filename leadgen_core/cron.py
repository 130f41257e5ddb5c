"""The last tick of a five-field cron expression, for the deadline sensor.

`SCHED_START_CRON` decides when a night starts; the SLA deadline is that tick plus SLA_MINUTES.
Only the standard five fields are read (minute hour day-of-month month day-of-week, with `*`,
lists, ranges and steps; day-of-week 0 or 7 is Sunday). As in cron, when both day fields are
restricted a day matching either runs.

    previous_tick("0 1 * * *", at=datetime(2026, 3, 2, 0, 30, tzinfo=SGT))  # 2026-03-01 01:00 SGT
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from leadgen_core.errors import ConfigError

# A night's cron ticks at least yearly; a bound keeps a nonsense expression (31 February) from looping.
MAX_LOOKBACK_DAYS = 400
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _parse_field(text: str, *, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, end = int(a), int(b)
            else:
                start = int(body)
                end = high if step_text else start
        except ValueError:
            raise ConfigError(f"cron {name} field {text!r} is not a number, range, list or step") from None
        if step < 1 or not (low <= start <= end <= high):
            raise ConfigError(f"cron {name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if len(fields) != 5:
            raise ConfigError(f"cron {expression!r} must have five fields (minute hour day month weekday)")
        parsed = [
            _parse_field(text, name=name, low=low, high=high)
            for text, (name, low, high) in zip(fields, _FIELDS, strict=True)
        ]
        weekdays = frozenset(0 if d == 7 else d for d in parsed[4])
        return cls(parsed[0], parsed[1], parsed[2], parsed[3], weekdays, fields[2] == "*", fields[4] == "*")

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow


def previous_tick(expression: str, *, at: datetime) -> datetime:
    """The latest tick of EXPRESSION at or before AT, in AT's time zone (AT must be aware)."""
    if at.tzinfo is None:
        raise ValueError("previous_tick needs an aware datetime")
    cron = Cron.parse(expression)
    limit = at.replace(second=0, microsecond=0)
    for back in range(MAX_LOOKBACK_DAYS):
        day = limit.date() - timedelta(days=back)
        if not cron.runs_on(day):
            continue
        for hour in sorted(cron.hours, reverse=True):
            for minute in sorted(cron.minutes, reverse=True):
                tick = datetime(day.year, day.month, day.day, hour, minute, tzinfo=at.tzinfo)
                if tick <= limit:
                    return tick
    raise ConfigError(f"cron {expression!r} has no tick in the last {MAX_LOOKBACK_DAYS} days")
