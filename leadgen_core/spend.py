"""Paying a vendor: response cache first, then an atomic budget reservation, then the call.

Every billable call in the product goes through `Spender.call`:

1. The request's fingerprint is looked up in `vendor_response_cache`. A hit costs nothing, so
   re-materialising a partition, or a second tenant asking about the same company, is free.
2. Otherwise the estimated units are reserved in the tenant's ledger (`budget.reserve`, one
   conditional upsert). A refused reservation raises `BudgetExhausted`: the caller degrades the
   item and the night goes on.
3. The call runs. Afterwards the reservation is settled to the units the vendor actually charged:
   the difference is released (a ZeroBounce `unknown`, a Lusha miss) or, if the vendor charged
   more than estimated, the extra is reserved (and may itself be refused next time).
4. A failed call releases its whole reservation, except one that raised `ChargeUncertain` (a
   billable request that timed out after it was sent): its reservation moves to the ledger's
   uncertain units, since the vendor may have charged it, and the caller retries its items
   another way (never the same request blindly).

The ledger day is the Singapore calendar day on which the money is spent (`clock()`, by default
`clock.today_sg`), never the partition's date: catch-up nights, backfills and re-runs of old
dates all draw on today's cap, so one real day can never spend more than one day's budget. A
reservation is released and settled on the day it was made, even when the call ends after
midnight.

In dry-run mode nothing is called: the would-be call and its estimate are added to a forecast.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core import budget
from leadgen_core.clock import today_sg
from leadgen_core.errors import BudgetExhausted, ChargeUncertain

T = TypeVar("T")

CACHE_GET_SQL = """
SELECT response, units FROM vendor_response_cache
WHERE vendor = %s AND fingerprint = %s AND expires_at > now()
"""
CACHE_PUT_SQL = """
INSERT INTO vendor_response_cache (vendor, fingerprint, response, units, expires_at)
VALUES (%s, %s, %s, %s, now() + make_interval(days => %s))
ON CONFLICT (vendor, fingerprint) DO UPDATE SET response = EXCLUDED.response, units = EXCLUDED.units,
    created_at = now(), expires_at = EXCLUDED.expires_at
"""

TenantConn = Callable[[], AbstractContextManager[psycopg.Connection]]


def fingerprint(vendor: str, request: Any) -> str:
    """A stable key for a request: sha256 of the vendor and the canonical JSON of the request."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{vendor}\x1f{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Paid(Generic[T]):
    """The outcome of a billable call: the value, what it cost, and whether it came from the cache."""

    value: T
    units: int
    cached: bool


@dataclass
class Forecast:
    """What a dry run would have spent, per vendor."""

    calls: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)

    def add(self, vendor: str, units: int) -> None:
        self.calls[vendor] = self.calls.get(vendor, 0) + 1
        self.units[vendor] = self.units.get(vendor, 0) + units


class DryRunSkipped(BudgetExhausted):
    """Raised instead of calling a vendor in dry-run mode (callers degrade as for a cap)."""


@dataclass
class Spender:
    """Spends one tenant's daily budget, day by the clock. Safe to share between asyncio workers."""

    tenant_id: str
    caps: dict[str, int]
    tenant_conn: TenantConn
    global_conn: Callable[[], AbstractContextManager[psycopg.Connection]]
    cache_ttl_days: int = 30
    dry_run: bool = False
    clock: Callable[[], date] = today_sg  # the ledger's day: when the money is spent
    forecast: Forecast = field(default_factory=Forecast)
    spent: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    uncertain: dict[str, int] = field(default_factory=dict)

    async def call(
        self,
        *,
        vendor: str,
        request: Any,
        estimate: int,
        run: Callable[[], Awaitable[tuple[Any, int]]],
        cacheable: bool = True,
    ) -> Paid[Any]:
        """Run a billable call. RUN returns (json-serialisable value, units actually charged)."""
        key = fingerprint(vendor, request)
        if cacheable:
            hit = await asyncio.to_thread(self._cache_get, vendor, key)
            if hit is not None:
                self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
                return Paid(hit, 0, True)
        if self.dry_run:
            self.forecast.add(vendor, estimate)
            raise DryRunSkipped(vendor, "dry run: no billable call made")
        day = await asyncio.to_thread(self._reserve, vendor, estimate)
        try:
            value, charged = await run()
        except ChargeUncertain:
            await asyncio.to_thread(self._mark_uncertain, vendor, estimate, day)
            raise
        except BaseException:
            await asyncio.to_thread(self._release, vendor, estimate, day)
            raise
        await asyncio.to_thread(self._settle, vendor, estimate, charged, day)
        self.spent[vendor] = self.spent.get(vendor, 0) + charged
        if cacheable:
            await asyncio.to_thread(self._cache_put, vendor, key, value, charged)
        return Paid(value, charged, False)

    async def cached(self, vendor: str, request: Any) -> Any | None:
        """The cached answer to REQUEST (a hit is counted), or None: for callers that batch requests."""
        hit = await asyncio.to_thread(self._cache_get, vendor, fingerprint(vendor, request))
        if hit is not None:
            self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
        return hit

    async def remember(self, vendor: str, request: Any, value: Any, *, units: int = 0) -> None:
        """Cache VALUE as the answer to REQUEST (one item of a batched call paid through `call`)."""
        await asyncio.to_thread(self._cache_put, vendor, fingerprint(vendor, request), value, units)

    # --- database steps (run in threads; the pool is thread-safe) ----------------------------
    def _cache_get(self, vendor: str, key: str) -> Any | None:
        with self.global_conn() as conn:
            row = conn.execute(CACHE_GET_SQL, (vendor, key)).fetchone()
        return None if row is None else row[0]

    def _cache_put(self, vendor: str, key: str, value: Any, units: int) -> None:
        with self.global_conn() as conn:
            conn.execute(CACHE_PUT_SQL, (vendor, key, Jsonb(value), units, self.cache_ttl_days))

    def _cap(self, vendor: str) -> int:
        return int(self.caps.get(vendor, 0))

    def _reserve(self, vendor: str, units: int) -> date:
        """Reserve UNITS on today's ledger (or raise BudgetExhausted); returns the day charged."""
        day = self.clock()
        with self.tenant_conn() as conn:
            budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=units,
                           cap=self._cap(vendor))  # fmt: skip
        return day

    def _release(self, vendor: str, units: int, day: date) -> None:
        with self.tenant_conn() as conn:
            budget.release(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=units)

    def _mark_uncertain(self, vendor: str, units: int, day: date) -> None:
        with self.tenant_conn() as conn:
            budget.mark_uncertain(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=units)
        self.uncertain[vendor] = self.uncertain.get(vendor, 0) + units

    def _settle(self, vendor: str, reserved: int, charged: int, day: date) -> None:
        if charged < reserved:
            self._release(vendor, reserved - charged, day)
        elif charged > reserved:
            # The vendor charged more than estimated: record it even past the cap (the money is
            # spent); the next reservation will then be refused, so the overshoot is one call.
            with self.tenant_conn() as conn:
                try:
                    budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor,
                                   units=charged - reserved, cap=self._cap(vendor))  # fmt: skip
                except BudgetExhausted:
                    budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor,
                                   units=charged - reserved, cap=2**62)  # fmt: skip
