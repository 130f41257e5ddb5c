"""Stage `email_verifications`: the night's target addresses through ZeroBounce, in batches.

An address is sent only when it is not suppressed by the tenant (address or domain), not a
free-mail address under FREEMAIL_POLICY=exclude, and not verified recently: within
EMAIL_VERIFY_TTL_DAYS, or within UNKNOWN_RECHECK_HOURS for an `unknown` (ZeroBounce does not
charge an unknown, so asking again on a later night is free unless it has become definite).

ZEROBOUNCE_MODE picks how addresses are sent. `single` (the default) validates each address with
`/v2/validate`, ZEROBOUNCE_IN_FLIGHT at a time: the same price per address, no shared 5-a-minute
bucket, so it scales with the number in flight. `batch` sends `validatebatch` requests of up to
ZEROBOUNCE_BATCH_SIZE (200) to the bulk host, paced by the shared 5-a-minute bucket.

Every request goes through the Spender, reserving one unit per address and settling to what
ZeroBounce charged (unknowns are not charged). When the cap refuses a batch, it is halved until
the remaining budget fits; once a single address is refused the cap is spent and the rest of the
night's addresses are degraded `budget:zerobounce` without asking again. A request that timed
out after it was sent (`ChargeUncertain`) is never re-sent: the Spender records its reservation
as uncertain, and a batch's addresses are then validated one by one (a single that times out is
degraded). Results, including catch-all and unknown as their own tiers, are stored in
`email_verification_cache`.

Single flight per address, across tenants (sql/045): before an address is paid for, it is
claimed in `vendor_inflight` (key: the address's fingerprint). An address another tenant's call
is verifying right now is left out of the batch (or not sent singly) and waited for, polling the
verification cache without holding a connection, a rate-limit slot or an in-flight place; its
answer is then taken as the other tenant's verification (`verified_elsewhere`). When that call
fails instead, the address is claimed and sent here. The claim ends in the transaction that
records the verification rows (or the failure). A dry run claims nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from leadgen_core import event_loop
from leadgen_core.enrich import contacts_store
from leadgen_core.enrich.contacts_store import EmailState
from leadgen_core.enrich.context import EnrichContext, Toolkit, open_toolkit
from leadgen_core.enrich.runner import StageReport, error_outcome, finish_report, pending_companies, run_companies
from leadgen_core.errors import BudgetExhausted, ChargeUncertain, VendorError
from leadgen_core.night.stage_status import Outcome, Status
from leadgen_core.scoring.freemail import is_freemail
from leadgen_core.spend.spender import (
    Claim,
    DryRunSkipped,
    Flight,
    FlightBusy,
    Flights,
    FlightTimeout,
    Paid,
    Verifications,
    fingerprint,
)

STAGE = "email_verifications"
UNKNOWN_RECHECK_HOURS = 20  # not again the same night (other tenants), but on the next one
# ZeroBounce takes 5 batch calls a minute: more batches in flight would only queue on the shared
# limiter (and past its 120 s horizon when several tenants verify at once).
PARALLEL_BATCHES = 2
VENDOR = "zerobounce"
# An address verified (by any tenant) recently enough that it is not sent: as emails_to_verify.
FRESH_SQL = """
SELECT email, status FROM email_verification_cache
WHERE email = ANY(%(emails)s) AND verified_at > now() - make_interval(days => %(ttl_days)s)
  AND (status <> 'unknown' OR verified_at > now() - make_interval(hours => %(unknown_hours)s))
"""


def flight_key(email: str) -> str:
    """The single-flight key of an address (the same in single and batch mode, for every tenant)."""
    return fingerprint(VENDOR, {"verify": email.lower()})


def _rows(answer: Any) -> list[tuple[str, str, str, bool, Any]]:
    """Verification rows from a ZeroBounce answer as the stage caches it (one list per address)."""
    return [(str(r[0]).lower(), str(r[1]), str(r[2]), bool(r[3]), r[4]) for r in answer]


class _Batches:
    """Sends addresses in budget-fitting batches; remembers each address's result or problem."""

    def __init__(self, kit: Toolkit) -> None:
        self.kit = kit
        self.status: dict[str, str] = {}
        self.problem: dict[str, Outcome] = {}
        self.cap_spent = False
        self.retry_singly: list[str] = []  # addresses of batches whose charge is uncertain
        self._semaphore = asyncio.Semaphore(min(kit.ctx.workers, PARALLEL_BATCHES))
        self._singles = asyncio.Semaphore(kit.ctx.settings.zerobounce_in_flight)
        self._emails: dict[str, str] = {}  # flight key -> address
        if kit.zerobounce is not None and kit.spender.deadline is None:
            kit.spender.deadline = kit.zerobounce.deadline  # the stage's: nobody waits past it

    # --- single flight --------------------------------------------------------------------------
    def _fresh(self, conn: Any, keys: list[str]) -> dict[str, Any]:
        """The statuses of KEYS' addresses verified (by anyone) recently enough not to be sent."""
        settings = self.kit.ctx.settings
        emails = [self._emails[k] for k in keys if k in self._emails]
        params = {"emails": emails, "ttl_days": settings.email_verify_ttl_days, "unknown_hours": UNKNOWN_RECHECK_HOURS}
        return {flight_key(str(e)): str(status) for e, status in conn.execute(FRESH_SQL, params).fetchall()}

    def _took(self, answers: dict[str, Any]) -> None:
        """Answers another call paid for: the addresses are verified, not by this tenant's money."""
        for key, status in answers.items():
            self.status[self._emails[key]] = str(status)
        self.kit.count("verified_elsewhere", len(answers))

    async def _claim(self, emails: list[str]) -> tuple[Claim | None, list[str], list[str]]:
        """Claim EMAILS: (the claim, the addresses claimed, the addresses another call holds)."""
        self._emails.update({flight_key(e): e for e in emails})
        flights: Flights = await self.kit.spender.claim(VENDOR, [flight_key(e) for e in emails], self._fresh)
        self._took(flights.answered)
        mine = set(flights.claim.keys) if flights.claim is not None else set()
        busy = set(flights.busy)
        return flights.claim, [e for e in emails if flight_key(e) in mine], [e for e in emails if flight_key(e) in busy]

    async def _await(self, emails: list[str]) -> list[str]:
        """Wait for the addresses other calls are verifying; returns those left unanswered (to send).
        An address still in flight elsewhere at the stage's deadline fails (retried another night)."""
        try:
            answers, freed = await self.kit.spender.wait(VENDOR, [flight_key(e) for e in emails], self._fresh)
        except FlightTimeout as exc:
            self._took(exc.answers)
            self._fail([e for e in emails if e not in self.status], exc)
            return []
        self._took(answers)
        return [self._emails[k] for k in freed]

    async def _paid(
        self,
        *,
        request: Any,
        estimate: int,
        run: Callable[[], Awaitable[tuple[Any, int]]],
        requests: int,
        verifications: Verifications,
        claim: Claim | None = None,
        flight: Flight | None = None,
    ) -> Paid[Any]:
        """`Toolkit.paid` with the addresses' claim: REQUESTS rate-limit slots, taken only once paying."""
        limiter = self.kit.limiters[VENDOR]

        async def limited() -> tuple[Any, int]:
            for _ in range(requests):
                await limiter.acquire()
            return await run()

        return await self.kit.spender.call(
            vendor=VENDOR, request=request, estimate=estimate, run=limited, cacheable=False,
            verifications=verifications, claim=claim, flight=flight,
            wait=False,  # waiting is done without the stage's in-flight places
        )  # fmt: skip

    async def _send(self, emails: list[str], claim: Claim | None = None) -> None:
        zerobounce = self.kit.zerobounce
        if zerobounce is None:
            raise RuntimeError("the stage did not ask for the ZeroBounce client")

        async def run() -> tuple[Any, int]:
            results = await zerobounce.validate_batch(emails)
            rows = [[v.email, v.status, v.sub_status, v.free_email, v.did_you_mean] for v in results]
            return rows, sum(1 for v in results if v.charged)

        paid = await self._paid(
            request={"op": "validatebatch", "emails": emails}, estimate=len(emails), run=run, requests=1,
            # email_verification_cache is the cache, keyed per address (and so is the claim)
            verifications=_rows, claim=claim,
        )  # fmt: skip
        rows = _rows(paid.value)
        self.status.update({r[0]: r[1] for r in rows})
        self.kit.count("verified_now", len(rows))
        for email in emails:
            if email not in self.status:  # ZeroBounce left it out of the answer
                self.problem[email] = Outcome(0, "degraded", "vendor_response:zerobounce", error="no result returned")

    async def _send_one(self, email: str) -> None:
        zerobounce = self.kit.zerobounce
        if zerobounce is None:
            raise RuntimeError("the stage did not ask for the ZeroBounce client")

        async def run() -> tuple[Any, int]:
            v = await zerobounce.validate(email)
            return [v.email, v.status, v.sub_status, v.free_email, v.did_you_mean], int(v.charged)

        # The address is claimed, read again from the verification cache, and its unit reserved in
        # one statement (a dry run claims nothing); FlightBusy when another call holds it.
        key = flight_key(email)
        self._emails[key] = email
        settings = self.kit.ctx.settings
        flight = None if self.kit.ctx.dry_run else Flight(
            key, self._fresh, source="verification", email=email,
            ttl_days=settings.email_verify_ttl_days, unknown_hours=UNKNOWN_RECHECK_HOURS,
        )  # fmt: skip
        # requests=0: /v2/validate is not behind the batch endpoint's 5-a-minute bucket
        paid = await self._paid(
            request={"op": "validate", "email": email}, estimate=1, run=run, requests=0,
            # email_verification_cache is the cache, written with the settlement (the claim ends there)
            verifications=lambda value: _rows([value]), flight=flight,
        )  # fmt: skip
        if paid.cached:  # verified meanwhile by another call
            self._took({key: paid.value})
            return
        (row,) = _rows([paid.value])
        self.status[row[0]] = row[1]
        self.kit.count("verified_now")

    async def verify_one(self, email: str) -> None:
        if self.cap_spent and not self.kit.ctx.dry_run:
            self._fail([email], BudgetExhausted("zerobounce", "daily cap reached"))
            return
        try:
            while True:
                try:
                    async with self._singles:
                        await self._send_one(email)
                    return
                except FlightBusy:  # another call is verifying it: wait without an in-flight place
                    if not await self._await([email]):
                        return  # verified by that call (or failed past the deadline)
        except DryRunSkipped as exc:
            self._fail([email], exc)
        except BudgetExhausted as exc:
            self.cap_spent = True
            self._fail([email], exc)
        except (VendorError, TimeoutError) as exc:  # ChargeUncertain included: never re-sent
            if isinstance(exc, ChargeUncertain):
                self.kit.count("uncertain_requests")
            self._fail([email], exc)

    def _fail(self, emails: list[str], exc: BaseException) -> None:
        outcome = error_outcome(0, exc, secrets=self.kit.secrets)
        self.problem.update(dict.fromkeys(emails, outcome))

    async def verify(self, emails: list[str]) -> None:
        """Batches of EMAILS; an address another call is verifying is waited for, and sent here only
        if that call fails."""
        todo = emails
        while todo:
            busy = await self._verify_chunks(todo)
            todo = await self._await(busy) if busy else []

    async def _verify_chunks(self, emails: list[str]) -> list[str]:
        """Send EMAILS in budget-fitting batches, each of the addresses it claimed; returns those
        another call holds."""
        busy: list[str] = []
        pending = [emails]
        while pending:
            chunk = pending.pop(0)
            if self.cap_spent and not self.kit.ctx.dry_run:
                self._fail(chunk, BudgetExhausted("zerobounce", "daily cap reached"))
                continue
            claim: Claim | None = None
            try:
                if not self.kit.ctx.dry_run:  # a dry run claims nothing
                    claim, chunk, held = await self._claim(chunk)
                    busy.extend(held)
                    if not chunk:
                        continue
                try:
                    async with self._semaphore:
                        await self._send(chunk, claim)
                except BaseException:
                    await self.kit.spender.unclaim(claim)  # if it failed before the Spender ended it
                    raise
            except DryRunSkipped as exc:
                self._fail(chunk, exc)
            except BudgetExhausted as exc:  # the refused reservation ended the claim: halves claim anew
                if len(chunk) == 1:
                    self.cap_spent = True
                    self._fail(chunk, exc)
                else:
                    half = len(chunk) // 2
                    pending[:0] = [chunk[:half], chunk[half:]]
            except ChargeUncertain:
                # paid or not, the batch is not sent again: its addresses go one by one later
                self.kit.count("uncertain_requests")
                self.retry_singly.extend(chunk)
            except (VendorError, TimeoutError) as exc:
                self._fail(chunk, exc)
        return busy


def company_outcome(company_id: int, *, states: list[EmailState], sendable: set[str], batches: _Batches) -> Outcome:
    if not states:
        return Outcome(company_id, "degraded", "no_email", detail={"emails": 0})
    tiers: Counter[str] = Counter()
    problems: list[Outcome] = []
    for s in states:
        if s.email not in sendable and not s.fresh:
            tiers["not_sent"] += 1  # suppressed or excluded free-mail
        elif s.email in batches.problem:
            problems.append(batches.problem[s.email])
        else:
            tiers[batches.status.get(s.email) or s.status or "unverified"] += 1
    detail: dict[str, Any] = {"emails": len(states), "tiers": dict(tiers), "cached": sum(1 for s in states if s.fresh)}
    if problems:
        # one address left failed (a transient vendor failure) makes the company worth another try
        first = next((p for p in problems if p.status == "failed"), problems[0])
        status: Status = "failed" if first.status == "failed" else "degraded"
        return Outcome(company_id, status, first.reason, error=first.error, detail=detail)
    if tiers["not_sent"] == len(states):
        return Outcome(company_id, "degraded", "no_email", detail=detail | {"all_suppressed_or_excluded": True})
    return Outcome(company_id, "done", detail=detail)


def sendable_emails(states: list[EmailState], *, policy: str) -> list[str]:
    """Addresses to send, in target priority order, each once; never a suppressed one."""
    out: dict[str, None] = {}
    for s in states:
        if s.fresh or s.suppressed or (policy == "exclude" and is_freemail(s.email)):
            continue
        out.setdefault(s.email, None)
    return list(out)


async def verify_stage(ctx: EnrichContext) -> StageReport:
    started = time.monotonic()
    ids = await pending_companies(ctx, STAGE)
    report = StageReport(STAGE, ctx.dry_run, len(ids))
    # In the tenant's transaction: the suppression rule reads the tenant's list under RLS.
    states: list[EmailState] = await ctx.in_tenant(
        lambda c: contacts_store.emails_to_verify(
            c,
            tenant_id=ctx.tenant_id,
            company_ids=ids,
            ttl_days=ctx.settings.email_verify_ttl_days,
            unknown_hours=UNKNOWN_RECHECK_HOURS,
        )
    )
    rank = {cid: i for i, cid in enumerate(ids)}
    states.sort(key=lambda s: (rank.get(s.company_id, len(rank)), s.email))
    to_send = sendable_emails(states, policy=ctx.settings.freemail_policy)
    by_company: dict[int, list[EmailState]] = {cid: [] for cid in ids}
    for s in states:
        by_company[s.company_id].append(s)
    async with open_toolkit(ctx, needs={"zerobounce"} if to_send else set()) as kit:
        kit.count("cached_fresh", sum(1 for s in states if s.fresh))
        kit.count("suppressed_not_sent", sum(1 for s in states if s.suppressed))
        batches = _Batches(kit)
        if ctx.settings.zerobounce_mode == "batch":
            size = ctx.settings.zerobounce_batch_size
            chunks = [to_send[i : i + size] for i in range(0, len(to_send), size)]
            await asyncio.gather(*(batches.verify(chunk) for chunk in chunks))
            singles = batches.retry_singly
        else:
            singles = to_send
        await asyncio.gather(*(batches.verify_one(email) for email in singles))
        sendable = set(to_send)

        async def work(company_id: int) -> Outcome:
            return company_outcome(company_id, states=by_company[company_id], sendable=sendable, batches=batches)

        report.outcomes = await run_companies(kit, stage=STAGE, company_ids=ids, work=work)
        return await finish_report(kit, report, started=started)


def run_verify_stage(ctx: EnrichContext) -> StageReport:
    """Verify the night's target addresses (the orchestrator's one call for this stage)."""
    return event_loop.run(verify_stage(ctx))
