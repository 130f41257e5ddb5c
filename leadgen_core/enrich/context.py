"""What an enrichment stage works with: the tenant-night, its budget, its clients.

`EnrichContext` is plain data the orchestration layer fills in (tenant, day, run, settings,
vendor configuration, connection factories, dry-run switch, progress callback). `open_toolkit`
turns it into live tools inside the stage's event loop: one shared `httpx.AsyncClient` for the
vendor clients, the crawler, one `SharedRateLimiter` per vendor, and the tenant's `Spender`.
`Toolkit.paid` is the one way a stage pays a vendor: response cache, budget reservation, rate
limit, call, settlement.

Dry run: every paid call is forecast instead of made (the Spender adds its estimate and raises
DryRunSkipped); free work (crawling sites whose address is known, contacts read from stored
crawls) is still done and kept in the shared tables, and no stage status or ledger row is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import psycopg

from leadgen_core.db.steps import db_step
from leadgen_core.enrich import accounts as accounts_mod
from leadgen_core.enrich import clients
from leadgen_core.enrich.accounts import NightAccounts, night_accounts
from leadgen_core.enrich.clients import CrawlerParts, VendorConfig
from leadgen_core.settings import Settings
from leadgen_core.spend.openai_limiter import OpenAILimiter
from leadgen_core.spend.ratelimit import SharedQuota, SharedRateLimiter
from leadgen_core.spend.spender import Paid, Recorder, Spender, open_spender
from leadgen_core.vendors import LushaClient, OpenAIExtractor, TavilyClient, ZeroBounceClient
from leadgen_core.vendors.aio_transport import aiohttp_client

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]
Progress = Callable[[str], None]
HTTP_POOL_MIN_CONNECTIONS = 8


def http_pool_limits(settings: Settings, workers: int) -> httpx.Limits:
    """As many kept-alive connections as requests the stage may have in flight.

    With fewer kept alive than in flight (the old 16 of 32, against 32 ZeroBounce validations in
    flight), every request past the 16th opened a new connection and closed it after one answer:
    a third of the verification stage's CPU went to TCP connects. The stage sends through aiohttp
    (`vendors.aio_transport`), whose connector does not rescan the pool per request as httpcore's
    does (one httpcore pool of 64 cost 5.6 ms CPU a request)."""
    size = max(HTTP_POOL_MIN_CONNECTIONS, workers, settings.zerobounce_in_flight)
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


RATE_BUCKET_PREFIX = accounts_mod.RATE_BUCKET_PREFIX  # the platform's buckets: vendor:<vendor>


def _quiet(message: str) -> None:
    return None


@dataclass(frozen=True)
class EnrichContext:
    """One tenant-night of one stage, as the orchestrator hands it over."""

    tenant_id: str
    day: date
    run_id: str | None
    settings: Settings
    vendors: VendorConfig
    tenant_conn: ConnFactory
    global_conn: ConnFactory
    dry_run: bool = False
    concurrency: int | None = None
    progress: Progress = _quiet
    # connections for one statement outside a transaction block (the rate limiters' bookings); None:
    # global_conn (see `Database.global_statement`)
    global_statement: ConnFactory | None = None
    # tenant transactions pipelined with their BEGIN and COMMIT (a paid call's record; see
    # `Database.tenant_pipeline`); None: tenant_conn's with a pipeline inside
    tenant_pipe: ConnFactory | None = None
    environ: Mapping[str, str] | None = None  # where tenants' own vendor keys are read; None: os.environ
    # time.monotonic() by which the stage must be done; None: SLA_MINUTES from the toolkit's opening.
    # No vendor retry waits past it (a longer Retry-After fails the item retryable at once).
    deadline: float | None = None

    @property
    def workers(self) -> int:
        return max(1, self.concurrency or self.settings.sched_company_concurrency)

    @property
    def statement_conn(self) -> ConnFactory:
        return self.global_statement or self.global_conn

    async def in_tenant(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """Run FN in a tenant transaction on a worker thread (the pool is synchronous)."""

        def work() -> Any:
            with self.tenant_conn() as conn:
                return fn(conn)

        return await db_step(work)

    async def in_statement(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """Run FN, which makes ONE statement on the shared tables, outside a transaction block: the
        statement is its own transaction, one round trip instead of three (`Database.global_statement`)."""

        def work() -> Any:
            with self.statement_conn() as conn:
                return fn(conn)

        return await db_step(work)

    async def in_global(self, fn: Callable[[psycopg.Connection], Any]) -> Any:
        """Run FN in a global transaction on a worker thread."""

        def work() -> Any:
            with self.global_conn() as conn:
                return fn(conn)

        return await db_step(work)


@dataclass
class Toolkit:
    ctx: EnrichContext
    spender: Spender
    http: httpx.AsyncClient
    limiters: dict[str, SharedRateLimiter]
    tavily: TavilyClient | None = None
    lusha: LushaClient | None = None
    zerobounce: ZeroBounceClient | None = None
    openai: OpenAIExtractor | None = None
    crawler: CrawlerParts | None = None
    counters: dict[str, int] = field(default_factory=dict)
    company_seconds: list[float] = field(default_factory=list)
    secrets: tuple[str, ...] = ()  # the keys in use, redacted from any recorded error text

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def paid(
        self,
        *,
        vendor: str,
        request: Any,
        estimate: int,
        run: Callable[[], Awaitable[tuple[Any, int]]],
        requests: int = 1,
        cacheable: bool = True,
        record: Recorder | None = None,
    ) -> Paid[Any]:
        """A billable call: cache, reservation, REQUESTS rate-limit slots, the call, settlement.

        RECORD writes what the answer means in the settlement's transaction (see `Spender.call`)."""
        limiter = self.limiters[vendor]

        async def limited() -> tuple[Any, int]:
            for _ in range(requests):
                await limiter.acquire()
            return await run()

        return await self.spender.call(
            vendor=vendor, request=request, estimate=estimate, run=limited, cacheable=cacheable, record=record
        )


def openai_limiter(
    conn: ConnFactory,
    config: VendorConfig,
    settings: Settings,
    accounts: NightAccounts | None = None,
    *,
    one: ConnFactory | None = None,
) -> OpenAILimiter:
    """The key's RPM and TPM buckets: the account's tier's documented limits unless OPENAI_RPM/TPM
    (the platform's account only) or the resource's rate say otherwise."""
    limits = (accounts or NightAccounts("")).openai_limits(settings)
    override = config.rates.get("openai")
    return OpenAILimiter.for_tier(
        conn,
        api_key=config.endpoint("openai", settings).api_key,
        model=config.openai_model or settings.openai_model,
        tier=limits.tier,
        rpm=override * 60 if override else limits.rpm,
        tpm=limits.tpm,
        tenant=(accounts or NightAccounts("")).tenant_id,
        one=one,
    )


def build_spender(ctx: EnrichContext) -> Spender:
    """The tenant's Spender for this stage; a real run first closes what killed runs left open."""
    return open_spender(
        tenant_id=ctx.tenant_id,
        tenant_conn=ctx.tenant_conn,
        global_conn=ctx.global_conn,
        default_caps=ctx.settings.vendor_caps(),
        cache_ttl_days=ctx.settings.vendor_cache_ttl_days,
        dry_run=ctx.dry_run,
        run_id=ctx.run_id,
        progress=ctx.progress,
        tenant_pipe=ctx.tenant_pipe,
        statement_conn=ctx.global_statement,
    )


def lusha_pace(
    ctx: EnrichContext, per_minute: SharedRateLimiter, accounts: NightAccounts | None = None
) -> Callable[[], Awaitable[None]]:
    """Before each Lusha request: the account's hourly and daily quotas, then the per-minute pace."""
    acc = accounts or NightAccounts(ctx.tenant_id)
    quota = SharedQuota(  # a transaction: its windows are locked, taken and pruned together
        ctx.global_conn, vendor="lusha", bucket=acc.lusha_quota_bucket(), windows=acc.lusha_windows(ctx.settings)
    )

    async def pace() -> None:
        await quota.acquire()  # first: a spent quota should not book a per-minute slot
        await per_minute.acquire()

    return pace


@asynccontextmanager
async def open_toolkit(ctx: EnrichContext, *, needs: Collection[str]) -> AsyncIterator[Toolkit]:
    """Live tools for the vendors (and "crawler") in NEEDS, closed on exit."""
    s = ctx.settings
    # the tenant's own vendor keys (bring your own key) for the vendors this stage pays, if any
    accounts = await db_step(
        night_accounts, ctx.tenant_conn, tenant_id=ctx.tenant_id,
        environ=os.environ if ctx.environ is None else ctx.environ, vendors=needs,
    )  # fmt: skip
    v = accounts.config(ctx.vendors)
    spender = await db_step(build_spender, ctx)
    rates = {vendor: accounts.rate(vendor, v, s) for vendor in clients.VENDORS}
    limiters = {
        vendor: SharedRateLimiter(  # the tenant books: a shared bucket is shared fairly (sql/044)
            ctx.global_conn,
            bucket=accounts.bucket(vendor),
            rate_per_s=rate.per_s,
            burst=rate.burst,
            tenant=ctx.tenant_id,
            one=ctx.statement_conn,
        )  # fmt: skip
        for vendor, rate in rates.items()
    }
    async with AsyncExitStack() as stack:
        http = aiohttp_client(http_pool_limits(s, ctx.workers))  # httpx's API over aiohttp's cheaper wire
        stack.push_async_callback(http.aclose)
        kit = Toolkit(ctx=ctx, spender=spender, http=http, limiters=limiters)
        if "tavily" in needs:
            kit.tavily = clients.tavily_client(v, s, http=http)
        if "lusha" in needs:
            kit.lusha = clients.lusha_client(v, s, http=http)
            kit.lusha.pace = lusha_pace(ctx, limiters["lusha"], accounts)  # a slot (and quota) for each request sent
        if "zerobounce" in needs:
            kit.zerobounce = clients.zerobounce_client(v, s, http=http)
        if "openai" in needs:
            kit.openai = clients.openai_extractor(v, s)
            stack.push_async_callback(kit.openai.aclose)
            # RPM and TPM, shared by every run
            kit.openai.limiter = openai_limiter(ctx.global_conn, v, s, accounts, one=ctx.statement_conn)
        kit.secrets = tuple(v.endpoint(x, s).api_key for x in clients.VENDORS if x in needs)
        deadline = ctx.deadline if ctx.deadline is not None else time.monotonic() + s.sla_minutes * 60.0
        for client in (kit.tavily, kit.lusha, kit.zerobounce):
            if client is not None:
                client.deadline = deadline
        spender.deadline = deadline  # nobody waits for another tenant's call of a request past it
        if "crawler" in needs:
            kit.crawler = clients.crawler_parts(v, s)
            stack.push_async_callback(kit.crawler.fetcher.aclose)
        yield kit
