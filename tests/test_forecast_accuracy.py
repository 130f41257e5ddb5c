"""`leadgen night --dry-run`'s forecast against the real night, in the realistic sandbox (issue 9 §2).

Real: Postgres (the app role, RLS in force), every night asset run by Dagster (`dg.materialize`),
the crawler, the vendor clients, the Spender, the shared limiters at the product's own settings.
Simulated: the websites, Tavily, Lusha, ZeroBounce, OpenAI and Odoo under the `realistic`
profile, TIME_SCALE times faster (every latency divided, every rate limit multiplied; the
product's limits raised to match, as `bench.nightly` does), and a synthetic ACRA registry.

The night before is run for real first (the forecast learns the tenant's cost and time per
target from it, `forecast.night_history`), then tonight's partition is dry-run (nothing paid,
nothing stored) and run for real: the forecast's OpenAI tokens, Tavily and ZeroBounce credits
must each be within ±15% of the real night's ledger; Lusha's credits and the duration are
printed, not held (see the end of the test).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import dagster as dg
import psycopg
import pytest

from leadgen_core.db.pool import set_tenant
from leadgen_core.enrich.clients import VendorConfig
from leadgen_core.sandbox.cluster import ODOO_DB, SandboxCluster, sandbox_cluster
from leadgen_core.sandbox.profile import ProfileName, SandboxProfile
from leadgen_core.sandbox.web import CRAWL_DELAY_S, SLOW_DELAY_S
from leadgen_core.settings import Settings
from leadgen_core.spend.forecast import night_history
from leadgen_core.vendors.openai_tiers import tier_limits
from leadgen_dagster.assets.crm import CRM_ASSETS
from leadgen_dagster.cli.night import night_forecast_of
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry, resources
from tests.enrich_helpers import DAY, NIGHT, PAID, TECH, q, vendors

TIME_SCALE = 20.0
TARGETS = 120
REGISTRY_ROWS = 6_000
TENANT = "alpha"
TIER = 2
PROFILE = SandboxProfile(name=ProfileName.REALISTIC, time_scale=TIME_SCALE)
WHOLE_NIGHT = [*NIGHT, *CRM_ASSETS]
TOLERANCE = 0.15
CAPS_PER_TARGET = {"tavily": 4, "lusha": 2, "zerobounce": 12, "openai": 30_000}


def scaled_env(settings: Settings) -> dict[str, str]:
    """The product's limits raised by the time scale as the simulators' are."""
    k, tier = TIME_SCALE, tier_limits(TIER)
    rpm = {v: VendorConfig().rate(v, settings).per_s * 60 for v in ("tavily", "lusha", "zerobounce")}
    return {
        "OPENAI_TIER": str(TIER),
        "OPENAI_RPM": repr((settings.openai_rpm or tier.rpm) * k),
        "OPENAI_TPM": repr((settings.openai_tpm or tier.tpm) * k),
        **{f"{v.upper()}_RPM": repr(r * k) for v, r in rpm.items()},
        "CRAWLER_DOMAIN_INTERVAL_S": repr(PROFILE.period(settings.crawler_domain_interval_s)),
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[SandboxCluster]:
    yield from sandbox_cluster(
        registry_rows=50, profile=PROFILE, web_slow_delay_s=PROFILE.latency(SLOW_DELAY_S),
        web_crawl_delay_s=PROFILE.period(CRAWL_DELAY_S),
    )  # fmt: skip


def run(db: DbHandle, instance: dg.DagsterInstance, cluster: SandboxCluster, *, dry_run: bool, day: date = DAY) -> Any:
    return dg.materialize(
        WHOLE_NIGHT,
        partition_key=f"{day.isoformat()}|{TENANT}",
        resources=resources(db.app_dsn, vendors=vendors(cluster, dry_run=dry_run, rate_per_s={}, timeout_s=20.0)),
        instance=instance,
        raise_on_error=False,
    )


def forecast_for(db: DbHandle, dry: Any, settings: Settings) -> Any:
    with psycopg.connect(db.app_dsn) as conn, conn.transaction():
        set_tenant(conn, TENANT)
        history = night_history(conn, tenant_id=TENANT, day=DAY)
    assert history is not None and history.nights == 1
    return night_forecast_of(dry, settings, time_scale=TIME_SCALE, history=history)


def ledger(db: DbHandle) -> dict[str, int]:
    return {
        v: int(u) for v, u in q(db.owner_dsn, "SELECT vendor, units FROM vendor_usage WHERE tenant_id = %s", TENANT)
    }


def test_dry_run_forecast_is_within_15_percent_of_the_real_night(
    clean_db: DbHandle, cluster: SandboxCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in scaled_env(Settings()).items():
        monkeypatch.setenv(name, value)
    env = cluster.env()
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ODOO_SANDBOX_KEY"):
        monkeypatch.setenv(name, env[name])
    load_registry(clean_db.owner_dsn, rows=REGISTRY_ROWS, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        add_tenant(conn, TENANT, rules=TECH)
        conn.execute("INSERT INTO tenant_budgets VALUES (%s, 'targets', %s)", (TENANT, TARGETS))
        for vendor, per_target in CAPS_PER_TARGET.items():  # two nights in one clock day
            conn.execute("INSERT INTO tenant_budgets VALUES (%s, %s, %s)", (TENANT, vendor, 2 * per_target * TARGETS))
        conn.execute(
            "UPDATE odoo_connections SET base_url = %s, db_name = %s, login = 'admin', "
            "secret_ref = 'env:ODOO_SANDBOX_KEY'",
            (cluster.odoo.base_url, ODOO_DB),
        )
    settings = Settings()
    with dg.instance_for_test() as instance:
        add_partitions(instance, TENANT)
        # the night before, for real: what the forecast learns the tenant's costs per target from
        assert run(clean_db, instance, cluster, dry_run=False, day=DAY - timedelta(days=1)).success
        before = ledger(clean_db)
        dry = run(clean_db, instance, cluster, dry_run=True)
        assert dry.success
        assert ledger(clean_db) == before  # the dry run paid nothing
        forecast = forecast_for(clean_db, dry, settings)
        assert forecast.targets == TARGETS
        real = run(clean_db, instance, cluster, dry_run=False)
        assert real.success
    # tonight's span as the history's is measured: its first stage's start to its last stage's end
    wall = float(q(clean_db.owner_dsn, "SELECT extract(epoch FROM max(finished_at) - min(started_at)) "
                                      "FROM run_stage_stats WHERE run_date = %s", DAY)[0][0])  # fmt: skip
    spent = {v: n - before.get(v, 0) for v, n in ledger(clean_db).items()}
    errors = {v: forecast.units[v] / spent[v] - 1 for v in PAID}
    errors["duration"] = forecast.seconds / wall - 1
    print(f"forecast {dict(forecast.units)} {forecast.seconds:.1f}s; night {spent} {wall:.1f}s; errors "
          + ", ".join(f"{k} {e:+.1%}" for k, e in errors.items()))  # fmt: skip
    # Held to ±15%: the units the ledger shows for OpenAI, Tavily and ZeroBounce. Reported only:
    # Lusha, whose credits are the contacts a bulk search returns, in clumps (most companies none,
    # a few several), so two nights of 120 targets differ by ~40% whatever the forecast knows per
    # target; and the duration, which follows the machine's CPU load as much as the vendors (the
    # same night took 23 s and 36 s with other jobs on the same 2 CPUs). See the README.
    held = {k: e for k, e in errors.items() if k in ("openai", "tavily", "zerobounce")}
    assert {k: e for k, e in held.items() if abs(e) > TOLERANCE} == {}, errors
    assert forecast.seconds > 0 and forecast.history_seconds > forecast.limits_seconds
