"""Enrichment end to end: crawled sites, web extractions, contacts and email verifications.

Real: Postgres (the app role, RLS in force), the four assets materialised by Dagster
(`dg.materialize` on a test instance, after the real targeting assets), the crawler's sockets,
robots.txt handling and SSRF guard, the vendor clients' HTTP (retries, Retry-After, timeouts),
the Spender's cache and budget ledger, and the shared rate limiter.
Simulated: the websites (WebSim's virtual hosts on one loopback port), Tavily, Lusha, ZeroBounce
and OpenAI (loopback simulators with request logs and billing counters, faults injected through
FaultConfig), and the registry (a small synthetic ACRA extract).
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest

from leadgen_core.enrich.websearch import plausible_site
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.cluster import SandboxCluster, sandbox_cluster
from leadgen_dagster.assets.enrichment import ENRICHMENT_ASSETS
from leadgen_dagster.assets.targeting import daily_targets, icp_candidates
from tests.conftest import DbHandle, add_tenant
from tests.dagster_helpers import add_partitions, load_registry
from tests.enrich_helpers import (
    DAY,
    ENRICH_STAGES,
    PAID,
    TECH,
    materialize,
    metadata,
    paid_requests,
    q,
    statuses,
    targets,
    usage,
)

TARGET_CAP = 16
REGISTRY_ROWS = 600
TARGETING = [icp_candidates, daily_targets]
DOWN_STAGE_REASONS = ("site:", "budget:", "vendor_response:", "no_")
TRANSIENT_REASONS = ("vendor_down:", "rate_limited:", "charge_uncertain:")


@pytest.fixture(scope="module")
def cluster() -> Iterator[SandboxCluster]:
    # the generator itself is the fixture body; slow sites and crawl-delays shortened for the test's clock
    yield from sandbox_cluster(registry_rows=50, web_slow_delay_s=0.3, web_crawl_delay_s=0.2)


@pytest.fixture(autouse=True)
def fast_crawler(monkeypatch: pytest.MonkeyPatch, cluster: SandboxCluster) -> Iterator[None]:
    monkeypatch.setenv("CRAWLER_DOMAIN_INTERVAL_S", "0.02")
    monkeypatch.setenv("CRAWLER_SITE_DEADLINE_S", "6")
    monkeypatch.setenv("CRAWLER_TIMEOUT_S", "2")
    cluster.clear_faults()
    cluster.reset_logs()
    yield
    cluster.clear_faults()


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        add_partitions(inst, "alpha", "beta")
        yield inst


@pytest.fixture
def night(clean_db: DbHandle) -> DbHandle:
    load_registry(clean_db.owner_dsn, rows=REGISTRY_ROWS, day=DAY)
    with psycopg.connect(clean_db.owner_dsn, autocommit=True) as conn:
        for tenant in ("alpha", "beta"):
            add_tenant(conn, tenant, rules=TECH)
            conn.execute("INSERT INTO tenant_budgets VALUES (%s, 'targets', %s)", (tenant, TARGET_CAP))
    return clean_db


def target(db: DbHandle, instance: dg.DagsterInstance, cluster: SandboxCluster, tenant: str) -> list[int]:
    assert materialize(db, instance, cluster, tenant, assets=TARGETING).success
    ids = targets(db.owner_dsn, tenant)
    assert len(ids) == TARGET_CAP
    return ids


def zerobounce_addresses(cluster: SandboxCluster) -> set[str]:
    """Every address sent to ZeroBounce, singly (the default mode) or in batches."""
    batched = {
        item["email_address"]
        for r in cluster.zerobounce.requests_to("/v2/validatebatch")
        for item in r.json()["email_batch"]
    }
    return batched | {r.query["email"][0] for r in cluster.zerobounce.requests_to("/v2/validate")}


def test_night_then_rematerialisation_makes_no_billable_call(night, instance, cluster, owner_conn) -> None:  # type: ignore[no-untyped-def]
    ids = target(night, instance, cluster, "alpha")
    # Addresses this tenant suppressed (one by address, one by domain) are already known globally.
    suppressed = ["boss@keep-out.example", "sales@blocked-domain.example"]
    for email in suppressed:
        owner_conn.execute(
            "INSERT INTO lead_emails (email, company_id, source) VALUES (%s, %s, 'crawl')", (email, ids[0])
        )
    owner_conn.execute("INSERT INTO suppression_emails (tenant_id, value, kind) VALUES ('alpha', %s, 'email'), "
                       "('alpha', 'blocked-domain.example', 'domain')", (suppressed[0],))  # fmt: skip

    result = materialize(night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS)
    assert result.success
    for stage in ENRICH_STAGES:
        got = statuses(night.owner_dsn, "alpha", stage)
        assert set(got) == set(ids), stage
        assert all(s in ("done", "degraded") and (s == "done" or r) for s, r in got.values()), (stage, got)
    billed = cluster.billable_units()
    assert billed["tavily"] > 0 and billed["openai"] > 0 and billed["zerobounce"] > 0 and billed["lusha"] > 0
    # the ledger holds exactly what the vendors billed (Lusha: credits, as billing.creditsCharged)
    spent = usage(night.owner_dsn, "alpha")
    assert {v: spent.get(v, 0) for v in PAID} == {v: billed[v] for v in PAID}
    # Lusha was asked in bulk: one prospecting search per 100 companies with a domain, plus one
    # per company known only by name (each request within V3's 100 items)
    prospecting = [r.json() for r in cluster.lusha.requests_to("/v3/contacts/prospecting")]
    bulk = [b for b in prospecting if b["filters"]["companies"]["include"].get("domains")]
    assert all(len(b["filters"]["companies"]["include"]["domains"]) <= 100 for b in bulk)
    assert len({tuple(b["filters"]["companies"]["include"]["domains"]) for b in bulk}) <= 1  # <= 100 targets
    buckets = {r[0] for r in q(night.owner_dsn, "SELECT bucket FROM rate_limit_buckets")}
    # paid calls took shared slots (single ZeroBounce validations have no shared bucket to take)
    assert "vendor:tavily" in buckets and cluster.zerobounce.requests_to("/v2/validate")
    # OpenAI is paced by its key's requests- and tokens-per-minute buckets instead
    token_buckets = [r[0] for r in q(night.owner_dsn, "SELECT bucket FROM rate_limit_token_buckets")]
    assert {b.rsplit(":", 1)[1] for b in token_buckets if ":tenant:" not in b} == {"requests", "tokens"}
    # ...and the tenant's share of the tokens (tenants on one key share its TPM fairly)
    assert [b for b in token_buckets if ":tenant:" in b] == [
        b for b in token_buckets if b.endswith(":tokens:tenant:alpha")
    ]
    assert any(b.endswith(":tokens:tenant:alpha") for b in token_buckets)
    crawl = metadata(result, "crawled_sites")
    assert crawl["units_tavily"] == billed["tavily"] - metadata(result, "web_extractions").get("units_tavily", 0)
    sent = zerobounce_addresses(cluster)
    assert sent and not sent & set(suppressed)
    assert metadata(result, "email_verifications")["counters"]["suppressed_not_sent"] == 2
    snapshots = q(
        night.owner_dsn, "SELECT count(*), count(corpus) FROM company_web_snapshots WHERE crawled_on = %s", DAY
    )
    assert snapshots == [(TARGET_CAP, 0)]  # PERSIST_CRAWL_CORPUS is off: no corpus kept with the snapshot
    # ...yet the extraction read the crawl's text (handed over, then deleted once extracted)
    from_crawl = q(night.owner_dsn, "SELECT count(*) FROM company_extractions WHERE 'crawl' = ANY(sources)")
    assert from_crawl == q(night.owner_dsn, "SELECT count(*) FROM company_web_snapshots WHERE text_chars > 0")
    assert from_crawl[0][0] > 0
    leftover = q(night.owner_dsn, "SELECT count(*) FROM company_web_corpus_handoff h JOIN company_extractions e "
                 "ON e.company_id = h.company_id AND e.extracted_on = h.crawled_on")  # fmt: skip
    assert leftover == [(0,)]
    assert q(night.owner_dsn, "SELECT count(*) FROM contacts")[0][0] > TARGET_CAP

    cluster.reset_logs()
    before = usage(night.owner_dsn, "alpha")
    again = materialize(night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS)
    assert again.success
    assert cluster.billable_units() == dict.fromkeys(PAID, 0)
    assert paid_requests(cluster) == dict.fromkeys(PAID, 0)
    assert cluster.web.log == []  # nothing was pending, so not even a free website was fetched twice
    assert usage(night.owner_dsn, "alpha") == before
    assert (
        metadata(again, "crawled_sites")["processed"] == 0 and metadata(again, "crawled_sites")["items"] == TARGET_CAP
    )


def test_suppressed_domains_are_never_stored_looked_up_or_verified(night, instance, cluster, owner_conn) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.sandbox.naming import sandbox_domain

    ids = target(night, instance, cluster, "alpha")
    names = dict(q(night.owner_dsn, "SELECT company_id, name FROM companies WHERE company_id = ANY(%s)", ids))
    blocked = sorted({sandbox_domain(names[c]) for c in ids[:8]})
    for domain in blocked:
        owner_conn.execute(
            "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES ('alpha', %s, 'domain')", (domain,)
        )
    result = materialize(night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS)
    assert result.success
    at_blocked = "SELECT count(*) FROM {} WHERE split_part(email, '@', 2) = ANY(%s)"
    # contacts: found on the suppressed sites or by Lusha, dropped before they are stored
    assert metadata(result, "contacts")["counters"]["suppressed_skipped"] > 0
    assert q(night.owner_dsn, at_blocked.format("contacts"), blocked) == [(0,)]
    # verification: no address at a suppressed domain ever reaches ZeroBounce
    sent = zerobounce_addresses(cluster)
    assert sent and not {e for e in sent if e.split("@")[1] in blocked}
    # and the other targets were enriched as usual
    others = q(night.owner_dsn, "SELECT count(DISTINCT company_id) FROM contacts WHERE company_id = ANY(%s)", ids[8:])
    assert others[0][0] > 0


def test_robots_and_ssrf_refusals_are_degraded_items_and_the_stage_goes_on(
    night, instance, cluster, owner_conn
) -> None:  # type: ignore[no-untyped-def]
    ids = target(night, instance, cluster, "alpha")
    lusha_port = cluster.lusha.port  # a loopback service that is not the web simulator
    sites = {
        ids[0]: "http://robots-deny-acme.sandbox.test/",
        ids[1]: "http://private-redirect-acme.sandbox.test/",
        ids[2]: "http://metadata-redirect-acme.sandbox.test/",
        ids[3]: f"http://127.0.0.1:{lusha_port}/",
        ids[4]: "http://robots-team-acme.sandbox.test/",
    }
    for cid, url in sites.items():
        owner_conn.execute("UPDATE companies SET website = %s, website_domain = %s WHERE company_id = %s",
                           (url, url.split("/")[2].split(":")[0], cid))  # fmt: skip

    result = materialize(night, instance, cluster, "alpha", assets=[ENRICHMENT_ASSETS[0]])
    assert result.success
    got = statuses(night.owner_dsn, "alpha", "crawled_sites")
    assert set(got) == set(ids)
    assert got[ids[0]] == ("degraded", "site:robots_disallowed")
    assert got[ids[1]] == got[ids[2]] == got[ids[3]] == ("degraded", "site:blocked")
    assert got[ids[4]][0] == "done"
    assert all(s in ("done", "degraded") for s, _ in got.values())
    assert cluster.web.paths_for("robots-deny-acme.sandbox.test") == ["/robots.txt"]
    team_site = cluster.web.paths_for("robots-team-acme.sandbox.test")
    assert "/" in team_site and "/about" in team_site and "/team" not in team_site
    assert cluster.lusha.log == []  # the SSRF guard refused the loopback address before connecting
    (pages,) = q(night.owner_dsn, "SELECT pages FROM company_web_snapshots WHERE company_id = %s", ids[4])[0]
    assert "http://robots-team-acme.sandbox.test/about" in [p["url"] for p in pages]
    assert all(p["text_chars"] > 0 and "/team" not in p["url"] for p in pages)
    (detail,) = q(night.owner_dsn, "SELECT detail FROM company_stage_status WHERE company_id = %s", ids[4])[0]
    assert detail["robots_skipped"] == ["http://robots-team-acme.sandbox.test/team"]
    reasons = metadata(result, "crawled_sites")["degraded_by_reason"]
    assert reasons["site:blocked"] >= 3 and reasons["site:robots_disallowed"] >= 1


def test_under_faults_every_target_ends_done_degraded_or_failed_with_a_reason(night, instance, cluster) -> None:  # type: ignore[no-untyped-def]
    ids = target(night, instance, cluster, "alpha")
    # 20% 5xx, 5% hung requests, and 429 bursts: our own limiter is set above the vendor's limit here
    flaky = {"error_rate": 0.2, "rate_limit_per_s": 5, "retry_after_s": 0.5, "timeout_rate": 0.05,
             "timeout_sleep_s": 2.0, "seed": 3}  # fmt: skip
    for name in PAID:
        cluster.set_faults(name, FaultConfig(**flaky))
    cluster.set_faults("web", FaultConfig(error_rate=0.1, seed=5))

    result = materialize(
        night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS, timeout_s=1.0, rate_per_s=dict.fromkeys(PAID, 10.0)
    )
    assert result.success
    for stage in ENRICH_STAGES:
        got = statuses(night.owner_dsn, "alpha", stage)
        assert set(got) == set(ids), stage
        for status, reason in got.values():
            final = status == "degraded" and reason and reason.startswith(DOWN_STAGE_REASONS)
            transient = (
                reason
                and reason.startswith(TRANSIENT_REASONS)
                and (
                    status == "failed"  # retried next time
                    or (stage == "web_extractions" and status == "degraded")  # facts from the crawl's text stored
                )
            )
            assert status == "done" or final or transient, (stage, status, reason)
    answered = {r.status for name in PAID for r in cluster.sims[name].log}
    assert {200, 429, 503} <= answered  # the faults really happened (504s are the timeouts the client gave up on)
    assert sum(metadata(result, s)["done"] for s in ENRICH_STAGES) > 0


def test_second_tenant_reads_the_first_tenants_work_for_free(night, instance, cluster, app_db) -> None:  # type: ignore[no-untyped-def]
    alpha, beta = target(night, instance, cluster, "alpha"), target(night, instance, cluster, "beta")
    assert set(alpha) == set(beta)  # same rules, same night: the same companies
    assert materialize(night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS).success
    assert cluster.billable_units()["tavily"] > 0

    cluster.reset_logs()
    result = materialize(night, instance, cluster, "beta", assets=ENRICHMENT_ASSETS)
    assert result.success
    assert cluster.billable_units() == dict.fromkeys(PAID, 0)
    assert cluster.web.log == []  # not even the free crawl was repeated
    assert usage(night.owner_dsn, "beta") == {}
    assert metadata(result, "crawled_sites")["counters"]["snapshots_reused"] == TARGET_CAP
    assert metadata(result, "web_extractions")["counters"].get("extractions_reused", 0) > 0
    for stage in ENRICH_STAGES:
        assert statuses(night.owner_dsn, "beta", stage) == statuses(night.owner_dsn, "alpha", stage), stage
    with app_db.tenant_transaction("beta") as conn:  # and beta sees none of alpha's books
        rows = conn.execute("SELECT DISTINCT tenant_id FROM company_stage_status UNION "
                            "SELECT DISTINCT tenant_id FROM vendor_usage").fetchall()  # fmt: skip
    assert rows == [("beta",)]


def test_tiny_caps_degrade_with_budget_reasons_and_are_never_exceeded(night, instance, cluster, owner_conn) -> None:  # type: ignore[no-untyped-def]
    # openai: less than one extraction's answer bound (EXTRACT_MAX_TOKENS, 831), so every extraction
    # is refused; 2,500 (about one) let the first through and degraded nothing when timing left the
    # tiny Tavily cap only one crawlable site
    caps = {"tavily": 3, "openai": 800, "zerobounce": 5, "lusha": 1}
    for vendor, cap in caps.items():
        owner_conn.execute("INSERT INTO tenant_budgets VALUES ('alpha', %s, %s)", (vendor, cap))
    # Every company already has a known address, so verification has more to send than its cap
    # allows whichever few sites the tiny Tavily cap lets the crawl find (that depends on timing).
    owner_conn.execute("INSERT INTO lead_emails (email, company_id, source) "
                       "SELECT 'sales' || company_id || '@known.example', company_id, 'crawl' FROM companies")  # fmt: skip
    result = materialize(night, instance, cluster, "alpha", checks=True)
    assert result.success
    reasons = {s: metadata(result, s)["degraded_by_reason"] for s in ENRICH_STAGES}
    assert reasons["crawled_sites"]["budget:tavily"] >= TARGET_CAP - caps["tavily"]
    assert reasons["web_extractions"].get("budget:openai", 0) >= 1
    assert reasons["email_verifications"].get("budget:zerobounce", 0) >= 1
    spent = usage(night.owner_dsn, "alpha")
    assert all(spent.get(v, 0) <= cap for v, cap in caps.items()), spent
    billed = cluster.billable_units()
    assert billed["tavily"] <= caps["tavily"] and billed["zerobounce"] <= caps["zerobounce"]
    assert billed["openai"] <= caps["openai"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["vendor_budgets_within_caps"].passed


def test_dry_run_forecasts_and_pays_nothing(night, instance, cluster) -> None:  # type: ignore[no-untyped-def]
    target(night, instance, cluster, "alpha")
    result = materialize(night, instance, cluster, "alpha", assets=ENRICHMENT_ASSETS, tags={"leadgen/dry_run": "true"})
    assert result.success
    assert paid_requests(cluster) == dict.fromkeys(PAID, 0)
    assert cluster.billable_units() == dict.fromkeys(PAID, 0)
    crawl = metadata(result, "crawled_sites")
    assert crawl["dry_run"] is True
    assert crawl["forecast_units"] == {"tavily": TARGET_CAP}  # one website search per company
    assert crawl["degraded_by_reason"] == {"dry_run:tavily": TARGET_CAP}
    assert metadata(result, "web_extractions")["forecast_units"]["openai"] > 0
    assert metadata(result, "contacts")["forecast_calls"]["lusha"] == TARGET_CAP
    assert usage(night.owner_dsn, "alpha") == {}
    recorded = q(night.owner_dsn, "SELECT count(*) FROM company_stage_status WHERE stage = ANY(%s)",
                 list(ENRICH_STAGES))  # fmt: skip
    assert recorded == [(0,)]  # the real run that follows still finds every company pending


@pytest.mark.parametrize(
    ("name", "url", "expected"),
    [
        ("Lotus Point Systems Pte. Ltd.", "http://lotus-point-systems.sandbox.test:8080/", True),
        ("Lotus Point Systems Pte. Ltd.", "https://www.lotuspoint.com.sg/about", True),
        ("Alpha Beta Consulting Pte. Ltd.", "https://ab.sg/", True),
        ("Lotus Point Systems Pte. Ltd.", "https://sgbizdirectory.example/company/lotus-point-systems", False),
        ("Lotus Point Systems Pte. Ltd.", "https://www.linkedin.com/company/lotus-point", False),
    ],
)
def test_a_search_result_is_taken_only_when_its_domain_is_plausibly_the_company(name, url, expected) -> None:  # type: ignore[no-untyped-def]
    assert plausible_site(name, url) is expected
