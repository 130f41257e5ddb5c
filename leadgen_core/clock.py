"""Singapore dates: the one place that decides which calendar day it is.

Nights, partitions, the budget ledger, `acra load`'s default snapshot and the retention cutoff all
count days in Asia/Singapore (UTC+8). A date taken from the host's local clock or from UTC is a
day behind between 00:00 and 08:00 SGT, which is exactly when the nightly runs happen.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final
from zoneinfo import ZoneInfo

from leadgen_core.settings import TIMEZONE

SGT: Final = ZoneInfo(TIMEZONE)


def sg_date(moment: datetime) -> date:
    """The Singapore calendar day of MOMENT (timezone-aware)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(SGT).date()


def today_sg(now: datetime | None = None) -> date:
    """Today in Singapore (or NOW's Singapore day, for callers that hold a clock reading)."""
    return sg_date(now if now is not None else datetime.now(UTC))
