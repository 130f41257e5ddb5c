"""The one reader of `Retry-After` headers, shared by every HTTP client in the product.

RFC 9110 §10.2.3 allows delta-seconds ("120") or an HTTP-date; both become seconds from now,
never negative. An absent or unreadable header is None, so the caller falls back to its own
backoff. What a caller does with a long wait (sleep through it, or give up and reschedule) is
its own policy, set per vendor; this module only reads the header.

    wait = retry_after_seconds(response.headers.get("Retry-After"))
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # "nan", "inf" parse as floats
        return None
    return max(0.0, seconds)


def parse_retry_after(value: str | None, *, cap: float) -> float | None:
    """`retry_after_seconds` clamped to CAP (for callers that wait at most CAP whatever is asked)."""
    seconds = retry_after_seconds(value)
    return None if seconds is None else min(cap, seconds)
