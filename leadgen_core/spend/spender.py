"""Paying a vendor: response cache first, then an atomic budget reservation, then the call.

Every billable call in the product goes through `Spender.call`:

1. The request's fingerprint is looked up in `vendor_response_cache`. A hit costs nothing, so
   re-materialising a partition, or a second tenant asking about the same company, is free.
   A miss claims the fingerprint in `vendor_inflight` (single flight, sql/045): a worker of any
   tenant that finds the fingerprint claimed by a call in progress does not pay for it again; it
   waits, holding no connection and no rate-limit slot, polling the cache with backoff (0.1 s to
   1 s) until the owner's answer is there (a cache hit, `Paid(value, 0, True)`). When the claim
   disappears without an answer (the owner failed) or expires, the waiter claims it and pays
   itself. Waiting ends at the stage's deadline (or the claim's expiry) with `FlightTimeout`, a
   TimeoutError: callers leave the item failed, to be retried. Callers with a cache of their own
   (ZeroBounce's per-address `email_verification_cache`) give `call` a `Flight` (the key and how
   to read its answer), or, for a batch, claim their items with `claim`, wait with `wait`, and
   hand the claim to `call`.
2. Otherwise the estimated units are reserved in the tenant's ledger (`budget.reserve`, one
   conditional upsert). The claim, a second lookup (an answer recorded while the claim waited on
   the owner's row), and only then the reservation with its journal row are one statement
   (`spend_open`, sql/047), its own transaction: one round trip. A refused reservation drops the
   claim and raises `BudgetExhausted`: the caller degrades the item and the night goes on.
3. The call runs. The moment it answers, ONE transaction records everything the answer means
   before anything else is done with it: the cache row (and the rows of every item of a batched
   answer, `items=`), the settlement of the reservation to the units the vendor actually charged
   (the difference released — a ZeroBounce `unknown`, a Lusha miss — or, if the vendor charged
   more than estimated, the extra reserved), and the end of the reservation's journal row. A
   process killed after the answer but before that commit is the only window left: one request
   per worker. The claim is deleted in that same transaction, so a waiter sees the answer and
   the claim's end at once. Usually that transaction is one statement (`spend_close`, sql/048:
   the cache row, a ZeroBounce answer's verification rows, the claim's end, the release, the
   journal's end); a call with a RECORD hook, or charged above its reservation, runs it inside a
   pipelined tenant transaction with the rest.
   Each reservation is journaled with its run id (`spend_reservations`). A run killed while a call
   was in flight leaves its rows behind; the tenant's next run (one run per tenant at a time)
   reconciles them: their units move to the ledger's uncertain units, shown by `leadgen budget
   show`, since the vendor may or may not have charged the call; its claims are deleted.
4. A failed call releases its reservation, except one that raised `ChargeUncertain` (a
   billable request that timed out after it was sent): its reservation moves to the ledger's
   uncertain units, since the vendor may have charged it, and the caller retries its items
   another way (never the same request blindly). A call of several requests (a Lusha lookup:
   prospecting, then search-and-enrich) that fails after earlier requests were billed names
   those bills (`VendorError.charged`): they stay spent, only the rest is released or uncertain.
   The claim is deleted in the same transaction: a waiter then claims and pays itself.

The ledger day is the Singapore calendar day on which the money is spent (`clock()`, by default
`clock.today_sg`), never the partition's date: catch-up nights, backfills and re-runs of old
dates all draw on today's cap, so one real day can never spend more than one day's budget. A
reservation is released and settled on the day it was made, even when the call ends after
midnight.

In dry-run mode nothing is called and nothing is claimed: the would-be call and its estimate are
added to a forecast.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from leadgen_core.clock import today_sg
from leadgen_core.db.steps import db_step
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

CACHE_MANY_SQL = """
SELECT fingerprint, response FROM vendor_response_cache
WHERE vendor = %s AND fingerprint = ANY(%s) AND expires_at > now()
"""
# Claims the keys nobody holds, and those whose claim has expired; returns the keys claimed. The
# row lock of a claim being inserted or deleted makes a second claimer wait for that outcome.
CLAIM_SQL = """
INSERT INTO vendor_inflight AS f (vendor, fingerprint, token, owner_tenant, run_id, expires_at)
SELECT %(vendor)s, k, %(token)s, %(tenant)s, %(run)s, now() + make_interval(secs => %(ttl)s)
FROM unnest(%(keys)s::text[]) AS k
ON CONFLICT (vendor, fingerprint) DO UPDATE
    SET token = EXCLUDED.token, owner_tenant = EXCLUDED.owner_tenant, run_id = EXCLUDED.run_id,
        claimed_at = now(), expires_at = EXCLUDED.expires_at
    WHERE f.expires_at <= now()
RETURNING f.fingerprint
"""
# `_begin`: the claim of the call's flight key, the answer read again, the reservation and its
# journal row, in one statement outside a transaction block (sql/047).
OPEN_CALL_SQL = """
SELECT state, answer, reservation_id
FROM spend_open(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::text[])
"""
# `_record`: the cache row, the verification rows, the claim's end, the slack's release and the
# journal's end, in one statement outside a transaction block (sql/048).
CLOSE_CALL_SQL = "SELECT spend_close(%s, %s, %s, %s, %s, %s, %s, %s::text[], %s, %s, %s, %s, %s)"
# A claim's rows by their primary key (vendor, fingerprint), checked against the owner's token: by
# the token alone the delete scanned every claim of the vendor, and the dead rows of a busy night's
# claims with them (0.10 ms a delete at one tenant, sql/045 has no index on the token).
UNCLAIM_SOME_SQL = "DELETE FROM vendor_inflight WHERE vendor = %s AND token = %s AND fingerprint = ANY(%s)"
LIVE_CLAIMS_SQL = """
SELECT fingerprint FROM vendor_inflight WHERE vendor = %s AND fingerprint = ANY(%s) AND expires_at > now()
"""
DEAD_CLAIMS_SQL = """
DELETE FROM vendor_inflight WHERE owner_tenant = %(tenant)s AND run_id IS DISTINCT FROM %(run)s
"""
CLAIM_TTL_S = 900.0  # a claim's backstop: an owner that vanished without its run being reconciled
POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0

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


class FlightBusy(Exception):  # noqa: N818 - a state, not an error: the caller waits (`wait`) and retries
    """Raised by `call(wait=False)` instead of waiting: another call holds the flight's key."""

    def __init__(self, vendor: str, key: str) -> None:
        super().__init__(f"{vendor}: the request is in flight elsewhere")
        self.vendor = vendor
        self.key = key


class FlightTimeout(TimeoutError):
    """Another worker's call of the same request did not end before the deadline.

    A TimeoutError, as the shared rate limiter's: callers record the item failed (retried later).
    ANSWERS holds what did arrive of a wait for several keys."""

    def __init__(self, message: str, answers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.answers = answers or {}


# Writes what an answer means (a bulk answer's per-item cache rows) inside the settlement's
# transaction, before it: RECORD(conn, value).
Recorder = Callable[[psycopg.Connection, Any], None]
# A ZeroBounce answer's rows for the verification cache: VERIFICATIONS(value) -> [(email, status,
# sub_status, free_email, did_you_mean)], written with the settlement (`spend_close`).
Verifications = Callable[[Any], list[tuple[str, str, str, bool, Any]]]
# The answers already recorded for some flight keys: LOOKUP(conn, keys) -> {key: answer}.
Lookup = Callable[[psycopg.Connection, list[str]], dict[str, Any]]


@dataclass(frozen=True)
class Flight:
    """The single-flight KEY of a call that is not cacheable, and LOOKUP, where its answer is
    recorded (a ZeroBounce address and the verification cache).

    SOURCE names the same place for the opening's one statement (`spend_open`, sql/047): "cache"
    (vendor_response_cache by the key) or "verification" (email_verification_cache by EMAIL,
    fresh within TTL_DAYS, an unknown within UNKNOWN_HOURS)."""

    key: str
    lookup: Lookup
    source: str
    email: str | None = None
    ttl_days: int = 0
    unknown_hours: int = 0

    def __post_init__(self) -> None:
        if self.source not in ("cache", "verification"):
            raise ValueError(f"a flight's answer is in the cache or the verification cache, not {self.source!r}")
        if self.source == "verification" and (not self.email or self.ttl_days <= 0):
            raise ValueError("a verification flight names its address and a freshness of at least a day")


@dataclass(frozen=True)
class Claim:
    """The flight keys of VENDOR that one call owns (sql/045): it pays for them, others wait."""

    vendor: str
    token: str
    keys: tuple[str, ...]


def _unclaim(conn: psycopg.Connection, claim: Claim) -> None:
    """End CLAIM: delete its rows by their key (vendor, fingerprint), checked against its token."""
    conn.execute(UNCLAIM_SOME_SQL, (claim.vendor, claim.token, list(claim.keys)))


@dataclass(frozen=True)
class Flights:
    """The outcome of claiming keys: those claimed, those answered already, those another call holds."""

    claim: Claim | None
    answered: dict[str, Any]
    busy: tuple[str, ...]


@dataclass(frozen=True)
class _Reservation:
    reservation_id: int
    day: date


@dataclass(frozen=True)
class _Begun:
    """What `_begin` found: a cached answer, a reservation (with the call's claim), or neither (busy)."""

    hit: bool = False
    value: Any = None
    held: _Reservation | None = None
    claim: Claim | None = None


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
    deadline: float | None = None  # time.monotonic() past which nobody waits for another's flight
    # A tenant transaction whose BEGIN and COMMIT go in the pipeline with its statements
    # (`Database.tenant_pipeline`), for a record with a RECORD hook or a charge above its
    # reservation (and every record when there is no STATEMENT_CONN), which reads nothing: one
    # round trip (three in TENANT_CONN's). None: TENANT_CONN's, a pipeline inside it.
    tenant_pipe: TenantConn | None = None
    # A connection outside any transaction block (`Database.global_statement`), for the opening's
    # and the record's one statement each, its own transaction (`spend_open` and `spend_close` set
    # the tenant themselves). None: the opening in TENANT_CONN's transaction, the record pipelined.
    statement_conn: TenantConn | None = None
    claim_ttl_s: float = CLAIM_TTL_S
    shared: dict[str, int] = field(default_factory=dict)  # answers waited for (another call paid)

    async def call(
        self,
        *,
        vendor: str,
        request: Any,
        estimate: int,
        run: Callable[[], Awaitable[tuple[Any, int]]],
        cacheable: bool = True,
        record: Recorder | None = None,
        claim: Claim | None = None,
        flight: Flight | None = None,
        wait: bool = True,
        verifications: Verifications | None = None,
    ) -> Paid[Any]:
        """Run a billable call. RUN returns (json-serialisable value, units actually charged).

        RECORD writes what the answer means (a batched answer's per-item cache rows with
        `cache_in`) in the same transaction as the settlement, so a crash never leaves a paid
        answer unrecorded; VERIFICATIONS gives a ZeroBounce answer's rows for the verification
        cache, which the settlement's own statement writes (`spend_close`, sql/048). A cacheable call is single
        flight by its fingerprint; a call that is not cacheable may be single flight by FLIGHT's
        key (claimed here; an answer found by FLIGHT's lookup is returned as `Paid(answer, 0,
        True)`), or bring the CLAIM of its items (`claim`). Either ends with the settlement, the
        failure, or a refused reservation. With WAIT false, a key another call holds raises
        FlightBusy instead of being waited for (the caller waits without its own slots).
        """
        key = fingerprint(vendor, request)
        if self.dry_run:  # a dry run never claims
            if cacheable:
                hit = await db_step(self._cache_get, vendor, key)
                if hit is not None:
                    self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
                    return Paid(hit, 0, True)
            self.forecast.add(vendor, estimate)
            raise DryRunSkipped(vendor, "dry run: no billable call made")
        if sum((cacheable, claim is not None, flight is not None)) > 1:
            raise ValueError("a call is single flight one way: cacheable, a flight or a claim")
        if cacheable:
            flight = Flight(key, self._cache_lookup(vendor), "cache")
        while True:
            begun = await db_step(self._begin, vendor, estimate, key, cacheable, claim, flight)
            if begun.hit:
                self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
                return Paid(begun.value, 0, True)
            if begun.held is not None:
                break
            assert flight is not None  # only a flight can be busy
            if not wait:
                raise FlightBusy(vendor, flight.key)
            # another call (of any tenant) is paying for this request right now: wait for its answer
            answers, _freed = await self.wait(vendor, [flight.key], flight.lookup)
            if flight.key in answers:
                self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
                self.shared[vendor] = self.shared.get(vendor, 0) + 1
                return Paid(answers[flight.key], 0, True)
            # the owner failed or its claim expired: claim it again (and pay, unless answered by then)
        held, own = begun.held, begun.claim
        try:
            value, charged = await run()
        except BaseException as exc:
            # what earlier requests of this call were billed is spent; the rest of the reservation
            # is released, or uncertain when the failed request may have been charged
            billed = exc.charged if isinstance(exc, VendorError) else 0
            uncertain = isinstance(exc, ChargeUncertain)
            await db_step(self._fail, vendor, estimate, billed, held, uncertain, own)
            raise
        try:
            await db_step(
                self._record, vendor, estimate, charged, held, key if cacheable else None, value, record, own,
                verifications(value) if verifications is not None else None,
            )  # fmt: skip
        except BaseException:
            await self.unclaim(own)  # let the waiters claim it rather than wait for the expiry
            raise
        self.spent[vendor] = self.spent.get(vendor, 0) + charged
        return Paid(value, charged, False)

    async def claim(self, vendor: str, keys: Sequence[str], lookup: Lookup) -> Flights:
        """Claim the flight KEYS of VENDOR nobody else holds (an expired claim is taken over).

        For callers with their own cache (LOOKUP reads it): a key answered by the time it was
        claimed is given back and returned as answered; the call that pays for the claimed keys
        gets the claim (`call(claim=...)`), which ends with its settlement or failure; keys another
        call holds are busy: `wait` for them. Never in a dry run (nothing is paid)."""
        if self.dry_run:
            raise RuntimeError("a dry run never claims")

        def step() -> Flights:
            with self.tenant_conn() as conn:
                return self._claim_in(conn, vendor, keys, lookup)

        return await db_step(step)

    async def unclaim(self, claim: Claim | None) -> None:
        """End CLAIM if it still stands (a caller's failure before `call` ended it); never raises."""
        if claim is not None:
            await db_step(self._unclaim_quietly, claim)

    async def wait(self, vendor: str, keys: Sequence[str], lookup: Lookup) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Wait until each of KEYS is answered (LOOKUP) or its claim has ended without an answer.

        Polls with backoff (0.1 s doubling to 1 s), holding no connection in between. Returns the
        answers and the keys freed without one (claim them again). Raises FlightTimeout past the
        stage's deadline, or past a claim's lifetime when there is none."""
        end = self.deadline if self.deadline is not None else time.monotonic() + self.claim_ttl_s + POLL_MAX_S
        pending = set(keys)
        answers: dict[str, Any] = {}
        freed: list[str] = []
        delay = POLL_FIRST_S
        while pending:
            await asyncio.sleep(max(0.0, min(delay, end - time.monotonic())))
            live, found = await db_step(self._poll, vendor, sorted(pending), lookup)
            answers.update(found)
            pending -= found.keys()
            freed.extend(k for k in sorted(pending) if k not in live)
            pending &= live
            if pending and time.monotonic() >= end:
                raise FlightTimeout(
                    f"{vendor}: {len(pending)} requests still in flight elsewhere at the deadline", answers
                )
            delay = min(POLL_MAX_S, delay * 2)
        return answers, tuple(freed)

    def reconcile(self) -> dict[str, int]:
        """Close the reservations of dead runs of this tenant: their units become uncertain.

        Runs of one tenant never overlap (the run queue's tag limit, `leadgen night`'s lock), so a
        reservation of another run is one a killed process left open: its call may have been
        charged or not. Its claims of single flight (sql/045) are deleted. Returns the uncertain
        units per vendor.
        """
        moved: dict[str, int] = {}
        with self.tenant_conn() as conn:
            # its claims too: the killed run will never answer them (the waiters then pay themselves)
            conn.execute(DEAD_CLAIMS_SQL, {"tenant": self.tenant_id, "run": self.run_id})
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
        hit = await db_step(self._cache_get, vendor, fingerprint(vendor, request))
        if hit is not None:
            self.cache_hits[vendor] = self.cache_hits.get(vendor, 0) + 1
        return hit

    # --- database steps (run in threads; the pool is thread-safe) ----------------------------
    def _cache_get(self, vendor: str, key: str) -> Any | None:
        with self.global_conn() as conn:
            row = conn.execute(CACHE_GET_SQL, (vendor, key)).fetchone()
        return None if row is None else row[0]

    def _cache_lookup(self, vendor: str) -> Lookup:
        def lookup(conn: psycopg.Connection, keys: list[str]) -> dict[str, Any]:
            return {str(k): v for k, v in conn.execute(CACHE_MANY_SQL, (vendor, keys)).fetchall()}

        return lookup

    def _claim_in(self, conn: psycopg.Connection, vendor: str, keys: Sequence[str], lookup: Lookup) -> Flights:
        wanted = sorted(set(keys))  # one order for every claimer: no deadlock between batches
        token = str(uuid.uuid4())
        params = {"vendor": vendor, "token": token, "tenant": self.tenant_id, "run": self.run_id,
                  "ttl": self.claim_ttl_s, "keys": wanted}  # fmt: skip
        got = [str(r[0]) for r in conn.execute(CLAIM_SQL, params).fetchall()]
        # A later statement sees what committed while the claim waited on another's row: an owner
        # that recorded its answer (and deleted its claim) just before this claim was made.
        answered = lookup(conn, got) if got else {}
        if answered:
            conn.execute(UNCLAIM_SOME_SQL, (vendor, token, list(answered)))
        mine = tuple(k for k in got if k not in answered)
        claimed = set(got)
        busy = tuple(k for k in wanted if k not in claimed)
        return Flights(Claim(vendor, token, mine) if mine else None, answered, busy)

    def _poll(self, vendor: str, keys: list[str], lookup: Lookup) -> tuple[set[str], dict[str, Any]]:
        """The keys still claimed (not expired), then the answers: an answer recorded between the
        two reads is found; one recorded before both ends the claim too."""
        with self.global_conn() as conn:
            live = {str(r[0]) for r in conn.execute(LIVE_CLAIMS_SQL, (vendor, keys)).fetchall()}
            found = lookup(conn, keys)
        return live - found.keys(), found

    def _unclaim_quietly(self, claim: Claim) -> None:
        try:
            with self.global_conn() as conn:
                _unclaim(conn, claim)
        except Exception:  # noqa: BLE001, S110 - the expiry and the next run's reconcile remain
            pass

    def _begin(
        self, vendor: str, units: int, key: str, cacheable: bool, claim: Claim | None, flight: Flight | None = None
    ) -> _Begun:
        """One statement (`spend_open`, sql/047), its own transaction: the claim of FLIGHT's key (the
        cache's, when CACHEABLE), then FLIGHT's answer read again, then the reservation and its
        journal row. An answer found there (cached already, or recorded while the claim waited on
        its owner's row) is returned, with nothing claimed or reserved; so is a refused
        reservation, which then raises BudgetExhausted (a CLAIM brought by the caller is ended:
        nothing will be paid)."""
        if units < 0:
            raise ValueError("units must be non-negative")
        if cacheable and flight is None:
            flight = Flight(key, self._cache_lookup(vendor), "cache")
        if claim is not None and claim.vendor != vendor:
            raise ValueError("a call's claim is of its own vendor")
        day, cap = self.clock(), self._cap(vendor)
        params = (
            self.tenant_id, vendor, uuid.uuid4(), self.run_id, self.claim_ttl_s,
            flight.key if flight else None, flight.source if flight else None, flight.email if flight else None,
            flight.ttl_days if flight else 0, flight.unknown_hours if flight else 0,
            day, units, cap, key,
            claim.token if claim else None, list(claim.keys) if claim else [],
        )  # fmt: skip
        with self._statement() as conn:
            row = conn.execute(OPEN_CALL_SQL, params).fetchone()
        state, answer, reservation = row if row is not None else ("refused", None, None)
        if state == "hit":
            return _Begun(hit=True, value=answer)
        if state == "busy":
            return _Begun()  # another call holds it: nothing was reserved
        if state == "held":
            own = Claim(vendor, str(params[2]), (flight.key,)) if flight is not None else claim
            return _Begun(held=_Reservation(int(reservation), day), claim=own)
        raise budget.refused(vendor, tenant_id=self.tenant_id, day=day, cap=cap)

    @contextmanager
    def _statement(self) -> Iterator[psycopg.Connection]:
        """A connection for one statement that is its own transaction (`statement_conn`), else a
        tenant transaction (TENANT_CONN's): `spend_open` sets the tenant itself, either way."""
        if self.statement_conn is not None:
            with self.statement_conn() as conn:
                yield conn
        else:
            with self.tenant_conn() as conn:
                yield conn

    def _reserve(self, vendor: str, units: int, key: str) -> _Reservation:
        """Reserve UNITS on today's ledger (or raise BudgetExhausted) and journal the reservation."""
        held = self._begin(vendor, units, key, False, None, None).held
        assert held is not None
        return held

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
        claim: Claim | None = None,
        rows: list[tuple[str, str, str, bool, Any]] | None = None,
    ) -> None:
        """The answer's cache row, its verification ROWS, the claim's end, the slack's release and
        the journal's end: one statement (`spend_close`, sql/048), its own transaction. With a
        RECORD hook (run first: its rows before the claim and ledger rows, as before), a charge
        above the reservation (the extra booked with a savepoint, after), or no STATEMENT_CONN,
        the same statement runs inside a pipelined tenant transaction with the rest."""
        params = (
            self.tenant_id, vendor, held.reservation_id, held.day, max(0, reserved - charged),
            claim.vendor if claim else None, claim.token if claim else None, list(claim.keys) if claim else [],
            key, Jsonb(value) if key is not None else None, charged, self.cache_ttl_days,
            Jsonb([list(r) for r in rows]) if rows else None,
        )  # fmt: skip
        if record is None and charged <= reserved and self.statement_conn is not None:
            with self.statement_conn() as conn:
                conn.execute(CLOSE_CALL_SQL, params)
            return
        with self._pipelined() as conn:
            if record is not None:
                record(conn, value)
            conn.execute(CLOSE_CALL_SQL, params)  # claims are locked before ledger rows
            if charged > reserved:
                self._settle_in(conn, vendor, reserved, charged, held.day)

    @contextmanager
    def _pipelined(self) -> Iterator[psycopg.Connection]:
        """A tenant transaction whose statements are pipelined: `tenant_pipe`'s (BEGIN and COMMIT
        in the pipeline too), else TENANT_CONN's with a pipeline inside it."""
        if self.tenant_pipe is not None:
            with self.tenant_pipe() as conn:
                yield conn
        else:
            with self.tenant_conn() as conn, conn.pipeline():
                yield conn

    def _cap(self, vendor: str) -> int:
        return int(self.caps.get(vendor, 0))

    def _fail(
        self,
        vendor: str,
        reserved: int,
        billed: int,
        held: _Reservation,
        uncertain: bool,
        claim: Claim | None = None,
    ) -> None:
        """A failed call's reservation, in one transaction: BILLED units (its earlier requests' bills)
        stay spent; the rest is released, or moved to the uncertain units when the failed request
        may have been charged (ChargeUncertain). The claim ends: a waiter claims it and pays itself."""
        rest = max(0, reserved - billed)
        with self.tenant_conn() as conn:
            if claim is not None:
                _unclaim(conn, claim)
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
    tenant_pipe: TenantConn | None = None,
    statement_conn: TenantConn | None = None,
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
        tenant_pipe=tenant_pipe,
        statement_conn=statement_conn,
    )
    if not dry_run:
        moved = spender.reconcile()
        if moved and progress is not None:
            progress(f"reservations of a killed run closed as uncertain charges: {moved}")
    return spender
