"""The budget ledger: atomic reservations against per-tenant daily vendor caps.

`reserve` is one conditional upsert: it adds the units only if the day's total stays within the
cap, so concurrent workers in concurrent runs (separate processes) can never overspend. A
reservation that the vendor did not charge (a ZeroBounce `unknown`, a Lusha miss, a failed call)
is given back with `release`. A reservation whose call timed out, so that the vendor may or may
not have charged it, is moved to `uncertain_units` with `mark_uncertain`: shown apart by
`leadgen budget show`, and still counted against the cap. Caps come from `tenant_budgets`,
defaulting to the environment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from leadgen_core.errors import BudgetExhausted

VENDORS = ("openai", "tavily", "lusha", "zerobounce")

# The row lock taken by ON CONFLICT serialises concurrent reservations of one tenant-day-vendor;
# the WHERE makes the whole reservation fail (no row returned) when it would cross the cap.
RESERVE_TEMPLATE = """
INSERT INTO vendor_usage AS u (tenant_id, usage_date, vendor, units, calls)
SELECT %(tenant)s, %(day)s, %(vendor)s, %(units)s, 1
WHERE %(units)s <= %(cap)s{also}
ON CONFLICT (tenant_id, usage_date, vendor) DO UPDATE
    SET units = u.units + EXCLUDED.units, calls = u.calls + 1, updated_at = now()
    WHERE u.units + u.uncertain_units + EXCLUDED.units <= %(cap)s
RETURNING u.units
"""
RESERVE_SQL = RESERVE_TEMPLATE.format(also="")

# Moves reserved units to the uncertain column (the row exists: it holds the reservation).
UNCERTAIN_SQL = """
UPDATE vendor_usage SET units = greatest(units - %(units)s, 0), uncertain_units = uncertain_units + %(units)s,
    updated_at = now()
WHERE tenant_id = %(tenant)s AND usage_date = %(day)s AND vendor = %(vendor)s
"""

RELEASE_SQL = """
UPDATE vendor_usage SET units = greatest(units - %(units)s, 0), updated_at = now()
WHERE tenant_id = %(tenant)s AND usage_date = %(day)s AND vendor = %(vendor)s
"""

CAPS_SQL = "SELECT vendor, daily_cap FROM tenant_budgets WHERE tenant_id = %s"
SET_CAP_SQL = """
INSERT INTO tenant_budgets (tenant_id, vendor, daily_cap) VALUES (%s, %s, %s)
ON CONFLICT (tenant_id, vendor) DO UPDATE SET daily_cap = EXCLUDED.daily_cap
"""
USAGE_SQL = """
SELECT vendor, units, calls, uncertain_units FROM vendor_usage WHERE tenant_id = %s AND usage_date = %s
"""


@dataclass(frozen=True)
class VendorSpend:
    vendor: str
    units: int
    calls: int
    cap: int
    uncertain: int = 0  # units of timed-out requests the vendor may or may not have charged

    @property
    def within_cap(self) -> bool:
        return self.units <= self.cap


def set_cap(conn: psycopg.Connection, *, tenant_id: str, vendor: str, cap: int) -> None:
    """Set (or replace) the tenant's daily cap for VENDOR ("targets" for the daily target cap).

    CONN must be the owner's: caps are read-only to the application role (sql/011), so the
    pipeline can never raise its own.
    """
    conn.execute(SET_CAP_SQL, (tenant_id, vendor, cap))


def caps_for(conn: psycopg.Connection, *, tenant_id: str, defaults: dict[str, int]) -> dict[str, int]:
    caps = dict(defaults)
    for vendor, cap in conn.execute(CAPS_SQL, (tenant_id,)).fetchall():
        caps[str(vendor)] = int(cap)
    return caps


def reserve(conn: psycopg.Connection, *, tenant_id: str, day: date, vendor: str, units: int, cap: int) -> int:
    """Reserve UNITS or raise BudgetExhausted; returns the day's total after the reservation."""
    if units < 0:
        raise ValueError("units must be non-negative")
    row = conn.execute(
        RESERVE_SQL, {"tenant": tenant_id, "day": day, "vendor": vendor, "units": units, "cap": cap}
    ).fetchone()
    if row is None:
        raise refused(vendor, tenant_id=tenant_id, day=day, cap=cap)
    return int(row[0])


def refused(vendor: str, *, tenant_id: str, day: date, cap: int) -> BudgetExhausted:
    """The error of a reservation the cap refused."""
    return BudgetExhausted(vendor, f"daily cap {cap} reached for tenant {tenant_id} on {day}")


def release(conn: psycopg.Connection, *, tenant_id: str, day: date, vendor: str, units: int) -> None:
    if units > 0:
        conn.execute(RELEASE_SQL, {"tenant": tenant_id, "day": day, "vendor": vendor, "units": units})


def mark_uncertain(conn: psycopg.Connection, *, tenant_id: str, day: date, vendor: str, units: int) -> None:
    """Move UNITS of a reservation to `uncertain_units`: the call timed out after it was sent."""
    if units > 0:
        conn.execute(UNCERTAIN_SQL, {"tenant": tenant_id, "day": day, "vendor": vendor, "units": units})


def spend(conn: psycopg.Connection, *, tenant_id: str, day: date, caps: dict[str, int]) -> list[VendorSpend]:
    rows = conn.execute(USAGE_SQL, (tenant_id, day)).fetchall()
    used = {str(v): (int(u), int(c), int(x)) for v, u, c, x in rows}
    vendors = sorted(set(caps) | set(used))
    return [
        VendorSpend(v, *used.get(v, (0, 0, 0))[:2], cap=caps.get(v, 0), uncertain=used.get(v, (0, 0, 0))[2])
        for v in vendors
        if v != "targets"
    ]
