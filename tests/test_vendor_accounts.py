"""Per-tenant vendor accounts (bring your own key): `leadgen vendors connect|list|disconnect` and the
keys, buckets and limits a tenant-night then uses.

Real: Postgres (the CLI writes `tenant_vendor_accounts` as the owner; the stages read it as the
application role under RLS), the secret-reference rule, `open_toolkit` with the product's own
Tavily and ZeroBounce clients, the scoring stage with the OpenAI SDK client, the shared rate
limiter's buckets. Simulated: Tavily, Lusha, ZeroBounce and OpenAI (loopback simulators that accept
the platform's key and the tenants' own, and under the realistic profile limit each key's account
alone; their request logs show which key each request carried).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.db.pool import Database
from leadgen_core.enrich.accounts import NightAccounts
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.enrich.context import EnrichContext, open_toolkit
from leadgen_core.enrich.verify_stage import _Batches
from leadgen_core.errors import ConfigError, DatabaseError
from leadgen_core.leads.score_stage import run_score_stage
from leadgen_core.sandbox.base import SimServer
from leadgen_core.sandbox.lusha import LushaSim
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.profile import SandboxProfile
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.sandbox.zerobounce import ZeroBounceSim
from leadgen_core.settings import Settings
from leadgen_core.spend.ratelimit import QuotaWindow
from leadgen_core.vendor_accounts import OwnKey
from leadgen_core.vendors.limits import LushaQuota
from leadgen_dagster.cli import main
from tests.conftest import DbHandle, add_tenant
from tests.test_scoring_stage import score_ctx, seed_night
from tests.test_scoring_stage import settings as score_settings

DAY = date(2026, 3, 2)
PLATFORM = {"tavily": "platform-tavily-key", "zerobounce": "platform-zb-key", "openai": "sk-platform-1a2b"}
OWN = {"tavily": "tvly-alpha-own-5f3e9c", "zerobounce": "zb-alpha-own-77d1a0", "openai": "sk-alpha-own-c0ffee42"}
ENV = {
    "tavily": "TENANT_SECRET_ALPHA_TAVILY",
    "zerobounce": "TENANT_SECRET_ALPHA_ZB",
    "openai": "TENANT_SECRET_ALPHA_OPENAI",
}
ENVIRON = {ENV[v]: OWN[v] for v in OWN}
OWNER_DSN_SECRET = "postgresql://postgres:owner-pw-4411@127.0.0.1/leadgen"


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.delenv("LEADGEN_SECRET_PREFIXES", raising=False)
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    assert run("tenants", "add", "Alpha").exit_code == 0
    assert run("tenants", "add", "Beta").exit_code == 0
    return run


def every_row_as_text(owner_dsn: str) -> str:
    """Every row of every public table, as text: what a key must never be found in."""
    with psycopg.connect(owner_dsn) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(str(r[0]) for t in tables for r in conn.execute(f'SELECT x::text FROM "{t}" x'))  # noqa: S608


def test_connect_list_disconnect_store_a_reference_never_the_key(cli: Any, clean_db: DbHandle) -> None:
    r = cli(
        "vendors", "connect", "--tenant", "alpha", "--vendor", "openai", "--secret-env", ENV["openai"], "--tier", "2"
    )
    assert r.exit_code == 0 and "tier 2" in r.output and OWN["openai"] not in r.output, r.output
    r = cli("vendors", "connect", "--tenant", "Alpha", "--vendor", "lusha", "--secret-env", "TENANT_SECRET_ALPHA_LUSHA",
            "--plan", "scale")  # fmt: skip
    assert r.exit_code == 0, r.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        rows = conn.execute(
            "SELECT tenant_id, vendor, secret_ref, plan FROM tenant_vendor_accounts ORDER BY 2"
        ).fetchall()
    assert rows == [("alpha", "lusha", "env:TENANT_SECRET_ALPHA_LUSHA", "scale"),
                    ("alpha", "openai", f"env:{ENV['openai']}", "2")]  # fmt: skip
    assert OWN["openai"] not in every_row_as_text(clean_db.owner_dsn)
    listed = cli("vendors", "list", "--tenant", "alpha").output
    assert "openai      own account   key from $TENANT_SECRET_ALPHA_OPENAI  plan 2" in listed
    assert "tavily      platform account" in listed and OWN["openai"] not in listed
    assert cli("vendors", "list", "--tenant", "beta").output.count("platform account") == 4  # alpha's stay alpha's
    r = cli("vendors", "disconnect", "--tenant", "alpha", "--vendor", "openai")
    assert r.exit_code == 0, r.output
    assert "openai      platform account" in cli("vendors", "list", "--tenant", "alpha").output
    r = cli("vendors", "disconnect", "--tenant", "alpha", "--vendor", "openai")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "no own openai account" in r.output


@pytest.mark.parametrize(
    "name", ["OPENAI_API_KEY", "LUSHA_API_KEY", "LEADGEN_DATABASE_URL", "LEADGEN_APP_PASSWORD", "PATH", "ACME_KEY"]
)
def test_connect_refuses_a_variable_the_product_reads(cli: Any, clean_db: DbHandle, name: str) -> None:
    r = cli("vendors", "connect", "--tenant", "alpha", "--vendor", "lusha", "--secret-env", name)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("error: "), r.output
    assert "--secret-env" in r.output and name in r.output and clean_db.owner_dsn not in r.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM tenant_vendor_accounts").fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vendor", "zerobounce", "--plan", "premium"], "--plan does not apply to zerobounce"),
        (["--vendor", "tavily", "--tier", "2"], "--tier does not apply to tavily: it takes --key-kind"),
        (["--vendor", "lusha", "--plan", "gold"], "unknown Lusha plan"),
        (["--vendor", "openai", "--tier", "9"], "--tier must be one of 1-5"),
        (["--vendor", "tavily", "--key-kind", "staging"], "unknown Tavily key kind"),
        (["--vendor", "odoo"], "Invalid value for '--vendor'"),
    ],
)
def test_connect_refuses_options_that_do_not_fit(cli: Any, clean_db: DbHandle, args: list[str], message: str) -> None:
    r = cli("vendors", "connect", "--tenant", "alpha", "--secret-env", "TENANT_SECRET_X", *args)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    with psycopg.connect(clean_db.owner_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM tenant_vendor_accounts").fetchone() == (0,)


def test_the_app_role_reads_only_its_tenants_accounts_and_writes_none(app_db: Database, owner_conn: Any) -> None:
    for tid in ("alpha", "beta"):
        add_tenant(owner_conn, tid)
    owner_conn.execute("INSERT INTO tenant_vendor_accounts VALUES ('alpha', 'tavily', 'env:TENANT_SECRET_A', "
                       "'production')")  # fmt: skip
    with app_db.tenant_transaction("beta") as conn:
        assert conn.execute("SELECT count(*) FROM tenant_vendor_accounts").fetchone() == (0,)
    with app_db.tenant_transaction("alpha") as conn:
        assert conn.execute("SELECT vendor FROM tenant_vendor_accounts").fetchall() == [("tavily",)]
    with pytest.raises(DatabaseError, match="permission denied"), app_db.tenant_transaction("alpha") as conn:
        conn.execute("UPDATE tenant_vendor_accounts SET secret_ref = 'env:TENANT_SECRET_B'")


# --- limits: pure -----------------------------------------------------------------------------


def test_an_own_account_is_paced_by_its_own_plan_not_the_platforms() -> None:
    s = Settings(LUSHA_PLAN="premium", TAVILY_KEY_KIND="production", OPENAI_TIER=1, OPENAI_RPM=100,  # type: ignore[call-arg]
                 TAVILY_RPM=500)  # fmt: skip
    config = VendorConfig()
    platform = NightAccounts("alpha")
    own = NightAccounts("alpha", {"lusha": OwnKey("lusha", "k1", "pro"), "tavily": OwnKey("tavily", "k2", "development"),
                                  "openai": OwnKey("openai", "k3", "2")})  # fmt: skip
    assert platform.bucket("lusha") == "vendor:lusha" and own.bucket("lusha") == "vendor:lusha:tenant:alpha"
    assert own.lusha_quota_bucket() == "quota:lusha:tenant:alpha" and platform.lusha_quota_bucket() == "quota:lusha"
    assert platform.rate("tavily", config, s).per_s == pytest.approx(500 / 60)  # TAVILY_RPM: the platform's
    assert own.rate("tavily", config, s).per_s == pytest.approx(100 / 60)  # a development key
    assert own.rate("lusha", config, s).per_s == pytest.approx(50 / 60)  # Pro: 50/min
    assert own.lusha_windows(s) == [QuotaWindow(limit=150, window_s=3_600), QuotaWindow(limit=1_500, window_s=86_400)]
    assert platform.lusha_windows(s) == [
        QuotaWindow(limit=1_800, window_s=3_600),
        QuotaWindow(limit=18_000, window_s=86_400),
    ]
    assert own.rate("openai", config, s).per_s == pytest.approx(5_000 / 60)  # tier 2
    assert (own.openai_limits(s).tier, own.openai_limits(s).rpm) == (2, None)
    assert (platform.openai_limits(s).tier, platform.openai_limits(s).rpm) == (1, 100)
    assert own.config(VendorConfig(lusha_api_key="platform")).lusha_api_key == "k1"
    assert "k1" not in repr(own)


# --- run time: keys and buckets against the simulators -----------------------------------------


@pytest.fixture
def sims() -> Iterator[dict[str, SimServer]]:
    started: dict[str, SimServer] = {
        "tavily": TavilySim(api_key=PLATFORM["tavily"]),
        "zerobounce": ZeroBounceSim(api_key=PLATFORM["zerobounce"]),
        "openai": OpenAISim(api_key=PLATFORM["openai"]),
    }
    for vendor, sim in started.items():
        sim.extra_keys.add(OWN[vendor])  # alpha's own account at the vendor
        sim.start()
    try:
        yield started
    finally:
        for sim in started.values():
            sim.stop()


def enrich_ctx(db: Database, sims: dict[str, SimServer], tenant: str, *, environ: dict[str, str]) -> EnrichContext:
    tavily, zb = sims["tavily"], sims["zerobounce"]
    assert isinstance(zb, ZeroBounceSim)
    vendors = VendorConfig(
        tavily_base_url=tavily.base_url, tavily_api_key=PLATFORM["tavily"],
        zerobounce_base_url=zb.base_url, zerobounce_bulk_base_url=zb.bulk_base_url,
        zerobounce_api_key=PLATFORM["zerobounce"], rates={"zerobounce": 100.0},
    )  # fmt: skip
    return EnrichContext(
        tenant_id=tenant, day=DAY, run_id=f"run-{tenant}", settings=Settings(), vendors=vendors,
        tenant_conn=lambda: db.tenant_transaction(tenant), global_conn=lambda: db.global_transaction(),
        environ=environ,
    )  # fmt: skip


async def search_and_verify(ctx: EnrichContext, query: str, email: str) -> None:
    async with open_toolkit(ctx, needs={"tavily", "zerobounce"}) as kit:
        assert kit.tavily is not None

        async def run() -> tuple[Any, int]:
            assert kit.tavily is not None
            found = await kit.tavily.search(query)
            return {"urls": [h.url for h in found.results]}, found.credits

        await kit.paid(vendor="tavily", request={"q": query}, estimate=1, run=run)
        await _Batches(kit).verify_one(email)


def sent_keys(sims: dict[str, SimServer]) -> dict[str, list[str]]:
    tavily = [r.headers.get("authorization", "") for r in sims["tavily"].log]
    zb = [r.query.get("api_key", [""])[0] for r in sims["zerobounce"].log]
    return {"tavily": tavily, "zerobounce": zb}


def test_a_tenant_with_its_own_keys_sends_them_and_books_its_own_buckets(
    app_db: Database, owner_conn: Any, clean_db: DbHandle, sims: dict[str, SimServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for tid in ("alpha", "beta"):
        add_tenant(owner_conn, tid)
    for vendor in ("tavily", "zerobounce"):
        plan = "development" if vendor == "tavily" else None
        owner_conn.execute("INSERT INTO tenant_vendor_accounts VALUES ('alpha', %s, %s, %s)",
                           (vendor, f"env:{ENV[vendor]}", plan))  # fmt: skip
    asyncio.run(search_and_verify(enrich_ctx(app_db, sims, "alpha", environ=ENVIRON), "acme robotics", "a@acme.sg"))
    assert sent_keys(sims) == {"tavily": [f"Bearer {OWN['tavily']}"], "zerobounce": [OWN["zerobounce"]]}
    for sim in sims.values():
        sim.reset_log()
    asyncio.run(search_and_verify(enrich_ctx(app_db, sims, "beta", environ=ENVIRON), "beta logistics", "b@beta.sg"))
    assert sent_keys(sims) == {"tavily": [f"Bearer {PLATFORM['tavily']}"], "zerobounce": [PLATFORM["zerobounce"]]}
    buckets = {r[0] for r in owner_conn.execute("SELECT bucket FROM rate_limit_buckets")}
    # (ZeroBounce's single validations are paced by the number in flight, not a bucket)
    assert {"vendor:tavily:tenant:alpha", "vendor:tavily"} <= buckets, buckets
    assert not any("beta" in b for b in buckets)  # beta shares the platform's
    stored = every_row_as_text(clean_db.owner_dsn)
    assert all(key not in stored for key in OWN.values()) and all(k not in caplog.text for k in OWN.values())


def test_the_response_cache_is_shared_whoever_paid(
    app_db: Database, owner_conn: Any, sims: dict[str, SimServer]
) -> None:
    for tid in ("alpha", "beta"):
        add_tenant(owner_conn, tid)
    owner_conn.execute("INSERT INTO tenant_vendor_accounts VALUES ('alpha', 'tavily', %s, 'production')",
                       (f"env:{ENV['tavily']}",))  # fmt: skip
    asyncio.run(search_and_verify(enrich_ctx(app_db, sims, "alpha", environ=ENVIRON), "same query", "x@same.sg"))
    asyncio.run(search_and_verify(enrich_ctx(app_db, sims, "beta", environ=ENVIRON), "same query", "y@same.sg"))
    assert len(sims["tavily"].requests_to("/search")) == 1  # beta's identical search came from the cache


@pytest.mark.parametrize("ref", ["env:TAVILY_API_KEY", "env:LEADGEN_DATABASE_URL", "env:TENANT_SECRET_UNSET"])
def test_a_reference_refused_or_unset_at_run_time_makes_no_request(
    app_db: Database, owner_conn: Any, sims: dict[str, SimServer], ref: str
) -> None:
    add_tenant(owner_conn, "alpha")
    # written by hand, past the CLI's check: the run checks the rule again
    owner_conn.execute("INSERT INTO tenant_vendor_accounts VALUES ('alpha', 'tavily', %s, 'production')", (ref,))
    environ = {**ENVIRON, "TAVILY_API_KEY": PLATFORM["tavily"], "LEADGEN_DATABASE_URL": OWNER_DSN_SECRET}
    ctx = enrich_ctx(app_db, sims, "alpha", environ=environ)
    with pytest.raises(ConfigError, match=ref.removeprefix("env:")) as info:
        asyncio.run(search_and_verify(ctx, "q", "a@b.sg"))
    assert "the tavily key of tenant alpha" in str(info.value)
    assert PLATFORM["tavily"] not in str(info.value) and "owner-pw-4411" not in str(info.value)
    assert sims["tavily"].log == [] and sims["zerobounce"].log == []


def test_the_scoring_stage_writes_rationales_with_the_tenants_own_openai_key(
    app_db: Database, owner_conn: Any, clean_db: DbHandle, sims: dict[str, SimServer]
) -> None:
    openai = sims["openai"]
    seed_night(owner_conn)  # tenant acme with scored evidence
    owner_conn.execute(
        "INSERT INTO tenant_vendor_accounts VALUES ('acme', 'openai', %s, '2')", (f"env:{ENV['openai']}",)
    )
    s = score_settings(openai_api_key=PLATFORM["openai"], openai_base_url=f"{openai.base_url}/v1")
    ctx = score_ctx(app_db, s)
    report = run_score_stage(dataclasses.replace(ctx, environ=ENVIRON))
    calls = openai.requests_to("/v1/chat/completions")
    assert calls and {r.headers.get("authorization") for r in calls} == {f"Bearer {OWN['openai']}"}
    assert report.counts().done == report.pending > 0
    own_id = hashlib.sha256(OWN["openai"].encode()).hexdigest()[:16]
    platform_id = hashlib.sha256(PLATFORM["openai"].encode()).hexdigest()[:16]
    buckets = {r[0] for r in owner_conn.execute("SELECT bucket FROM rate_limit_token_buckets")}
    assert any(b.startswith(f"openai:{own_id}:") for b in buckets) and not any(platform_id in b for b in buckets)
    assert OWN["openai"] not in every_row_as_text(clean_db.owner_dsn) and OWN["openai"] not in repr(report)


def test_the_toolkit_paces_an_own_lusha_and_openai_account_by_its_own_plan(app_db: Database, owner_conn: Any) -> None:
    add_tenant(owner_conn, "alpha")
    owner_conn.execute("INSERT INTO tenant_vendor_accounts VALUES ('alpha', 'lusha', 'env:TENANT_SECRET_ALPHA_LUSHA', "
                       "'pro'), ('alpha', 'openai', %s, '2')", (f"env:{ENV['openai']}",))  # fmt: skip
    vendors = VendorConfig(lusha_base_url="http://127.0.0.1:9", lusha_api_key="platform-lusha",
                           openai_base_url="http://127.0.0.1:9/v1", openai_api_key=PLATFORM["openai"])  # fmt: skip
    environ = {**ENVIRON, "TENANT_SECRET_ALPHA_LUSHA": "lusha-alpha-own-9b8a"}
    ctx = EnrichContext(tenant_id="alpha", day=DAY, run_id="r", settings=Settings(LUSHA_PLAN="premium", OPENAI_TIER=1),  # type: ignore[call-arg]
                        vendors=vendors, tenant_conn=lambda: app_db.tenant_transaction("alpha"),
                        global_conn=lambda: app_db.global_transaction(), environ=environ)  # fmt: skip

    async def open_and_pace() -> tuple[Any, ...]:
        async with open_toolkit(ctx, needs={"lusha", "openai"}) as kit:
            assert kit.lusha is not None and kit.lusha.pace is not None and kit.openai is not None
            await kit.lusha.pace()  # one Lusha request's quota and slot
            return kit.limiters["lusha"], kit.openai.limiter, kit.secrets

    lusha_limiter, openai_limiter, secrets = asyncio.run(open_and_pace())
    assert lusha_limiter.bucket == "vendor:lusha:tenant:alpha" and lusha_limiter.interval == pytest.approx(60 / 50)
    windows = owner_conn.execute("SELECT bucket, window_s, used FROM rate_limit_windows ORDER BY window_s").fetchall()
    assert windows == [("quota:lusha:tenant:alpha", 3_600, 1), ("quota:lusha:tenant:alpha", 86_400, 1)]
    own_id = hashlib.sha256(OWN["openai"].encode()).hexdigest()[:16]
    assert openai_limiter.tokens.bucket.startswith(f"openai:{own_id}:") and openai_limiter.tpm == 2_000_000  # tier 2
    assert set(secrets) == {"lusha-alpha-own-9b8a", OWN["openai"]}  # redacted from any recorded error


def test_the_realistic_simulators_limit_each_account_alone() -> None:
    # Tavily (development key: 100 requests a minute) and Lusha (a plan of 5 a minute): the
    # platform's key spends its limit; a tenant's own key still has all of its own
    realistic = SandboxProfile.parse("realistic")
    with TavilySim(api_key=PLATFORM["tavily"], profile=realistic, key_kind="development") as tavily, \
            LushaSim(api_key="platform-lusha", profile=realistic,
                     plan=LushaQuota(per_minute=5, per_hour=None, per_day=100)) as lusha:  # fmt: skip
        tavily.extra_keys.add(OWN["tavily"])
        lusha.extra_keys.add("lusha-alpha-own")
        with httpx.Client(timeout=10) as http:

            def tavily_status(key: str) -> int:
                return http.post(f"{tavily.base_url}/search", json={"query": "q"},
                                 headers={"Authorization": f"Bearer {key}"}).status_code  # fmt: skip

            def lusha_status(key: str) -> int:
                return http.post(
                    f"{lusha.base_url}/v3/contacts/prospecting", json={}, headers={"api_key": key}
                ).status_code

            assert [tavily_status(PLATFORM["tavily"]) for _ in range(100)].count(429) == 0
            assert tavily_status(PLATFORM["tavily"]) == 429
            assert tavily_status(OWN["tavily"]) != 429
            assert [lusha_status("platform-lusha") for _ in range(6)].count(429) == 1  # the 6th
            assert lusha_status("lusha-alpha-own") != 429
