"""Paying a vendor: response cache first, then an atomic budget reservation, then the call.

Every billable call in the product goes through `Spender.call`:

1. The request's fingerprint is looked up in `vendor_response_cache`. A hit costs nothing, so
   re-materialising a partition, or a second tenant asking about the same company, is free.
2. Otherwise the estimated units are reserved in the tenant's ledger (`budget.reserve`, one
   conditional upsert). A refused reservation raises `BudgetExhausted`: the caller degrades the
   item and the night goes on.
3. The call runs. The moment it answers, ONE transaction records everything the answer means
   before anything else is done with it: the cache row (and the rows of every item of a batched
   answer, `items=`), the settlement of the reservation to the units the vendor actually charged
   (the difference released — a ZeroBounce `unknown`, a Lusha miss — or, if the vendor charged
   more than estimated, the extra reserved), and the end of the reservation's journal row. A
   process killed after the answer but before that commit is the only window left: one request
   per worker.
   Each reservation is journaled with its run id (`spend_reservations`). A run killed while a call
   was in flight leaves its rows behind; the tenant's next run (one run per tenant at a time)
   reconciles them: their units move to the ledger's uncertain units, shown by `leadgen budget
   show`, since the vendor may or may not have charged the call.
4. A failed call releases its reservation, except one that raised `ChargeUncertain` (a
   billable request that timed out after it was sent): its reservation moves to the ledger's
   uncertain units, since the vendor may have charged it, and the caller retries its items
   another way (never the same request blindly). A call of several requests (a Lusha lookup:
   prospecting, then search-and-enrich) that fails after earlier requests were billed names
   those bills (`VendorError.charged`): they stay spent, only the rest is released or uncertain.

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

from leadgen_core.clock import today_sg
from leadgen_core.errors import BudgetExhausted, ChargeUncertain, VendorError
from leadgen_core.spend import budget

T = TypeVar("T")

CACHE_GET_SQL = """
SELECT response, units FROM vendor_response_cache
WHERE vendor = %s AND fingerprint = %s AND expires_at > now()
"""
JOURNAL_SQL = """
INSERT INTO spend_reservations (tenant_id, usage_date, vendor, units, run_id, fingerprint)
VALUES (%s, %s, %s, %s, %s, %s) RETURNING reservation_id
"""
END_JOURNAL_SQL = "DELETE FROM spend_reservations WHERE reservation_id = %s"
DEAD_RESERVATIONS_SQL = """
DELETE FROM spend_reservations
WHERE tenant_id = %(tenant)s AND run_id IS DISTINCT FROM %(run)s
RETURNING usage_date, vendor, units
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


# Writes what an answer means (its items' cache rows, verification rows) inside the settlement's
# transaction: RECORD(conn, value).
Recorder = Callable[[psycopg.Connection, Any], None]


@dataclass(frozen=True)
class _Reservation:
    reservation_id: int
    day: date


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
    run_id: str | None = None  # journaled with each reservation; None outside Dagster (tests, CLI)

    async def call(
        self,
        *,
        vendor: str,
        request: Any,
        estimate: int,
        run: Callable[[], Awaitable[tuple[Any, int]]],
        cacheable: bool = True,
        record: Recorder | None = None,
    ) -> Paid[Any]:
        """Run a billable call. RUN returns (json-serialisable value, units actually charged).

        RECORD writes what the answer means (a batched answer's per-item cache rows with
        `cache_in`, the verification rows of a ZeroBounce answer) in the same transaction as the
        settlement, so a crash never leaves a paid answer unrecorded.
        """
        key = fingerprint(vendor, request)
        if cacheable:
            hit = await asyncio.to_thread(self._cache_get, vendor, key)
            if hit is not None:
                self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
                return Paid(hit, 0, True)
        if self.dry_run:
            self.forecast.add(vendor, estimate)
            raise DryRunSkipped(vendor, "dry run: no billable call made")
        held = await asyncio.to_thread(self._reserve, vendor, estimate, key)
        try:
            value, charged = await run()
        except BaseException as exc:
            # what earlier requests of this call were billed is spent; the rest of the reservation
            # is released, or uncertain when the failed request may have been charged
            billed = exc.charged if isinstance(exc, VendorError) else 0
            uncertain = isinstance(exc, ChargeUncertain)
            await asyncio.to_thread(self._fail, vendor, estimate, billed, held, uncertain)
            raise
        await asyncio.to_thread(
            self._record, vendor, estimate, charged, held, key if cacheable else None, value, record
        )
        self.spent[vendor] = self.spent.get(vendor, 0) + charged
        return Paid(value, charged, False)

    def reconcile(self) -> dict[str, int]:
        """Close the reservations of dead runs of this tenant: their units become uncertain.

        Runs of one tenant never overlap (the run queue's tag limit, `leadgen night`'s lock), so a
        reservation of another run is one a killed process left open: its call may have been
        charged or not. Returns the uncertain units per vendor.
        """
        moved: dict[str, int] = {}
        with self.tenant_conn() as conn:
            for day, vendor, units in conn.execute(
                DEAD_RESERVATIONS_SQL, {"tenant": self.tenant_id, "run": self.run_id}
            ).fetchall():
                budget.mark_uncertain(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=int(units))
                moved[vendor] = moved.get(vendor, 0) + int(units)
        for vendor, units in moved.items():
            self.uncertain[vendor] = self.uncertain.get(vendor, 0) + units
        return moved

    async def cached(self, vendor: str, request: Any) -> Any | None:
        """The cached answer to REQUEST (a hit is counted), or None: for callers that batch requests."""
        hit = await asyncio.to_thread(self._cache_get, vendor, fingerprint(vendor, request))
        if hit is not None:
            self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
        return hit

    # --- database steps (run in threads; the pool is thread-safe) ----------------------------
    def _cache_get(self, vendor: str, key: str) -> Any | None:
        with self.global_conn() as conn:
            row = conn.execute(CACHE_GET_SQL, (vendor, key)).fetchone()
        return None if row is None else row[0]

    def _cache_put(self, vendor: str, key: str, value: Any, units: int) -> None:
        with self.global_conn() as conn:
            conn.execute(CACHE_PUT_SQL, (vendor, key, Jsonb(value), units, self.cache_ttl_days))

    def cache_in(self, conn: psycopg.Connection, vendor: str, request: Any, value: Any, *, units: int = 0) -> None:
        """Cache VALUE as the answer to REQUEST on CONN (inside a RECORD hook, say)."""
        conn.execute(CACHE_PUT_SQL, (vendor, fingerprint(vendor, request), Jsonb(value), units, self.cache_ttl_days))

    def _record(
        self,
        vendor: str,
        reserved: int,
        charged: int,
        held: _Reservation,
        key: str | None,
        value: Any,
        record: Recorder | None,
    ) -> None:
        """The answer's cache row, what it means, the settlement and the journal's end: one transaction."""
        with self.tenant_conn() as conn:
            if key is not None:
                conn.execute(CACHE_PUT_SQL, (vendor, key, Jsonb(value), charged, self.cache_ttl_days))
            if record is not None:
                record(conn, value)
            self._settle_in(conn, vendor, reserved, charged, held.day)
            conn.execute(END_JOURNAL_SQL, (held.reservation_id,))

    def _cap(self, vendor: str) -> int:
        return int(self.caps.get(vendor, 0))

    def _reserve(self, vendor: str, units: int, key: str) -> _Reservation:
        """Reserve UNITS on today's ledger (or raise BudgetExhausted) and journal the reservation."""
        day = self.clock()
        with self.tenant_conn() as conn:
            budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=units,
                           cap=self._cap(vendor))  # fmt: skip
            row = conn.execute(JOURNAL_SQL, (self.tenant_id, day, vendor, units, self.run_id, key)).fetchone()
        assert row is not None
        return _Reservation(int(row[0]), day)

    def _fail(self, vendor: str, reserved: int, billed: int, held: _Reservation, uncertain: bool) -> None:
        """A failed call's reservation, in one transaction: BILLED units (its earlier requests' bills)
        stay spent; the rest is released, or moved to the uncertain units when the failed request
        may have been charged (ChargeUncertain)."""
        rest = max(0, reserved - billed)
        with self.tenant_conn() as conn:
            if billed > reserved:
                self._settle_in(conn, vendor, reserved, billed, held.day)
            if uncertain:
                budget.mark_uncertain(conn, tenant_id=self.tenant_id, day=held.day, vendor=vendor, units=rest)
            elif rest:
                budget.release(conn, tenant_id=self.tenant_id, day=held.day, vendor=vendor, units=rest)
            conn.execute(END_JOURNAL_SQL, (held.reservation_id,))
        if uncertain:
            self.uncertain[vendor] = self.uncertain.get(vendor, 0) + rest
        if billed:
            self.spent[vendor] = self.spent.get(vendor, 0) + billed

    def _settle_in(self, conn: psycopg.Connection, vendor: str, reserved: int, charged: int, day: date) -> None:
        if charged < reserved:
            budget.release(conn, tenant_id=self.tenant_id, day=day, vendor=vendor, units=reserved - charged)
        elif charged > reserved:
            # The vendor charged more than estimated: record it even past the cap (the money is
            # spent); the next reservation will then be refused, so the overshoot is one call.
            try:
                with conn.transaction():  # a savepoint: a refused reservation leaves the rest intact
                    budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor,
                                   units=charged - reserved, cap=self._cap(vendor))  # fmt: skip
            except BudgetExhausted:
                budget.reserve(conn, tenant_id=self.tenant_id, day=day, vendor=vendor,
                               units=charged - reserved, cap=2**62)  # fmt: skip


def open_spender(
    *,
    tenant_id: str,
    tenant_conn: TenantConn,
    global_conn: Callable[[], AbstractContextManager[psycopg.Connection]],
    default_caps: dict[str, int],
    cache_ttl_days: int,
    dry_run: bool,
    run_id: str | None,
    progress: Callable[[str], None] | None = None,
) -> Spender:
    """The one way a stage gets the tenant's Spender: its caps (the tenant's own over DEFAULT_CAPS),
    journaled under RUN_ID; a real run first closes what killed runs left open (uncertain charges)."""
    with tenant_conn() as conn:
        caps = budget.caps_for(conn, tenant_id=tenant_id, defaults=default_caps)
    spender = Spender(
        tenant_id=tenant_id,
        caps=caps,
        tenant_conn=tenant_conn,
        global_conn=global_conn,
        cache_ttl_days=cache_ttl_days,
        dry_run=dry_run,
        run_id=run_id,
    )
    if not dry_run:
        moved = spender.reconcile()
        if moved and progress is not None:
            progress(f"reservations of a killed run closed as uncertain charges: {moved}")
    return spender
