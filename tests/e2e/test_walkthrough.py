"""The README's walkthrough, step by step, in a real Chromium against a running `leadgen dev`.

Real: everything `make dev` starts (database, sandbox simulators, demo tenants, Dagster webserver
and daemon, the start-up nights), Debian's Chromium, and the `leadgen` CLI where the README tells
a user to type a command. Each step is done through the UI, in the words Dagster 1.13 shows;
GraphQL or the sandbox Odoo are only read after the browser has shown a state, to confirm it.
One test, because each step builds on the state the previous one left (as the README does).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import Product

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

TENANTS = ("demo-alpha", "demo-beta")
TENANT_ASSETS = ("icp_candidates", "daily_targets", "crawled_sites", "web_extractions", "contacts",
                 "email_verifications", "lead_scores", "odoo_sync")  # fmt: skip
RUN_WAIT_S = 600


class Walk:
    """The browser page, and a numbered screenshot after each step."""

    def __init__(self, page: Any, shots: Path, product: Product) -> None:
        self.page = page
        self.shots = shots
        self.product = product
        self.n = 0

    def shot(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.shots / f"{self.n:02d}-{name}.png"), full_page=True)

    def nav(self, label: str) -> None:
        """Click an item of Dagster's left navigation."""
        self.page.get_by_text(label, exact=True).first.click()

    def open_asset(self, key: str, tab: str) -> None:
        self.nav("Catalog")
        self.page.get_by_text(key, exact=True).first.click()
        self.page.get_by_text("Materialize…", exact=True).first.wait_for()  # the asset's page
        self.page.get_by_text(tab, exact=True).last.click()


def sgt_today() -> datetime:
    return datetime.now(ZoneInfo("Asia/Singapore"))


def graphql(product: Product, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = httpx.post(f"{product.ui}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId jobName status tags { key value } } } }
}"""


def odoo_records(product: Product, model: str, fields: list[str]) -> list[dict[str, Any]]:
    """Read the sandbox Odoo over its JSON-RPC, as the README tells a user to."""
    url, key = product.sandbox("ODOO_SANDBOX_URL"), product.sandbox("ODOO_SANDBOX_KEY")

    def call(service: str, method: str, *args: Any) -> Any:
        payload = {"jsonrpc": "2.0", "method": "call", "id": 1,
                   "params": {"service": service, "method": method, "args": list(args)}}  # fmt: skip
        body = httpx.post(f"{url}/jsonrpc", json=payload, timeout=30).json()
        assert "error" not in body, body
        return body["result"]

    uid = call("common", "authenticate", "sandbox", "admin", key, {})
    return call("object", "execute_kw", "sandbox", uid, key, model, "search_read", [[]], {"fields": fields})


def wait_for_runs(
    walk: Walk, *, job: str, count: int, status: str = "Success", partition: str = "", failed_before: bool = False
) -> None:
    """On the Runs page, reload until COUNT runs of JOB (of PARTITION) show STATUS (a failed run
    stops the wait at once, unless FAILED_BEFORE: the partition's earlier failure is expected)."""
    page = walk.page
    deadline = time.monotonic() + RUN_WAIT_S
    while True:
        rows = page.locator("div[data-index]", has_text=job)  # the runs feed is a virtualised list
        if partition:
            rows = rows.filter(has_text=f"partition: {partition}")
        texts = [rows.nth(i).inner_text() for i in range(rows.count())]
        done = [t for t in texts if status in t]
        if len(done) >= count:
            return
        if any("Failure" in t for t in texts) and status != "Failure" and not failed_before:
            pytest.fail(f"a {job} run failed:\n" + "\n".join(texts) + "\n" + walk.product.log_tail())
        if time.monotonic() > deadline:
            pytest.fail(f"{count} {job} run(s) did not reach {status}:\n" + "\n".join(texts))
        page.wait_for_timeout(3000)
        page.reload()
        page.get_by_text("Launched by", exact=True).first.wait_for()


def test_readme_walkthrough(product: Product, browser: Any, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    walk = Walk(page, shots, product)
    try:
        step_1_no_community_dialog(walk)
        step_2_lineage(walk)
        step_3_tenant_partitions(walk)
        step_4_todays_runs(walk)
        step_5_lead_scores_and_checks(walk)
        step_6_failed_partition_reexecuted_from_failure(walk)
        step_7_backfill_one_tenant_over_3_dates(walk)
        quiet_log(walk.product)
    except Exception:
        walk.shot("failure")
        raise
    finally:
        context.close()


def quiet_log(product: Product) -> None:
    """After the whole walkthrough, `make dev`'s log holds none of the start-up warnings and no
    per-tick sensor chatter (run event DEBUG lines are still there: see the README)."""
    log = product.log.read_text(encoding="utf-8", errors="replace")
    for noise in ("in the current folder", "dev_command", "Checking for new runs for sensor"):
        assert noise not in log, noise


def step_1_no_community_dialog(walk: Walk) -> None:
    """The "Join the Dagster community" dialog is off (dagster.yaml `nux.enabled: false`)."""
    page = walk.page
    page.goto(walk.product.ui)
    page.get_by_text("Catalog", exact=True).first.wait_for()
    page.wait_for_timeout(2500)  # the UI shows it one second after load
    assert page.get_by_text("Join the Dagster community").count() == 0
    walk.shot("first-visit")
    log = walk.product.log.read_text(encoding="utf-8", errors="replace")
    assert (walk.product.home / "sandbox.env").is_file() and "sandbox variables written to" in log


def step_2_lineage(walk: Walk) -> None:
    """Lineage, groups expanded (Alt+E): acra_staging through odoo_sync."""
    page = walk.page
    walk.nav("Lineage")
    page.get_by_text("Global asset lineage").wait_for()
    page.get_by_text("registry", exact=True).first.wait_for()
    page.keyboard.press("Alt+e")  # "Expand all groups"
    for key in ("acra_staging", "companies", "icp_candidates", "daily_targets", "crawled_sites",
                "web_extractions", "contacts", "lead_scores", "odoo_sync"):  # fmt: skip
        page.get_by_text(key, exact=True).last.wait_for()
    walk.shot("lineage-expanded")


def step_3_tenant_partitions(walk: Walk) -> None:
    page = walk.page
    walk.open_asset("lead_scores", "Partitions")
    for tenant in TENANTS:
        page.get_by_text(tenant, exact=True).first.wait_for()
    walk.shot("tenant-partitions")


def step_4_todays_runs(walk: Walk) -> None:
    walk.nav("Runs")
    wait_for_runs(walk, job="registry_refresh_job", count=1)
    wait_for_runs(walk, job="tenant_night_job", count=2)
    walk.shot("todays-runs-succeeded")
    runs = graphql(walk.product, RUNS_QUERY)["runsOrError"]["results"]
    nights = {t["value"] for r in runs if r["jobName"] == "tenant_night_job" and r["status"] == "SUCCESS"
              for t in r["tags"] if t["key"] == "leadgen/tenant"}  # fmt: skip
    assert nights == set(TENANTS)


def step_5_lead_scores_and_checks(walk: Walk) -> None:
    page = walk.page
    walk.open_asset("lead_scores", "Events")
    page.get_by_text(f"{sgt_today().date().isoformat()}|demo-alpha").first.click()
    page.get_by_text("top_leads", exact=True).first.wait_for()
    for key in ("bucket_high", "bucket_medium", "bucket_low", "units_openai", "dagster/row_count"):
        page.get_by_text(key, exact=True).first.wait_for()
    walk.shot("lead-scores-metadata")
    page.get_by_text("[Show Markdown]").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("table").first.wait_for()
    assert dialog.get_by_role("row").count() >= 2  # a header and at least one lead
    walk.shot("top-leads-table")
    page.get_by_role("button", name="Close").click()
    walk.open_asset("lead_scores", "Overview")
    page.get_by_text("Plots", exact=True).first.click()  # beside "Table": each numeric key across partitions
    for key in ("bucket_high", "items", "duration_s"):
        page.get_by_text(key, exact=True).first.wait_for()
    walk.shot("lead-scores-plots")
    walk.open_asset("odoo_sync", "Checks")
    for check in ("night_within_sla", "vendor_budgets_within_caps"):
        page.get_by_text(check, exact=True).first.wait_for()
    assert page.get_by_text("Succeeded").count() >= 2
    walk.shot("odoo-sync-checks")


def launch_partition(walk: Walk, *, job: str, day: str, tenant: str | None = None) -> None:
    """Jobs → JOB → Materialize all… → the partition → Launch run."""
    page = walk.page
    walk.nav("Jobs")
    page.get_by_text(job, exact=True).first.click()
    page.get_by_text("Materialize all…", exact=True).first.click()
    dialog = page.locator(".bp5-dialog")  # the launch dialog (the tenant picker is a popover "dialog" too)
    date_input = dialog.get_by_role("textbox").first  # the date dimension's partition text
    date_input.fill(day)
    date_input.press("Enter")
    if tenant:
        dialog.get_by_text("Select a partition or create one").click()
        page.get_by_role("menuitem", name=tenant).or_(page.get_by_text(tenant, exact=True)).first.click()
    walk.shot(f"launch-{job}-{day}")
    dialog.get_by_role("button", name=re.compile("^Launch")).click()
    dialog.wait_for(state="detached")


def step_6_failed_partition_reexecuted_from_failure(walk: Walk) -> None:
    """Yesterday's demo-alpha partition: its targets were never synced (make dev runs today's nights
    only), so with Odoo broken its odoo_sync really fails; repaired, From failure finishes it."""
    page, product = walk.page, walk.product
    yesterday = (sgt_today().date() - timedelta(days=1)).isoformat()
    key = f"{yesterday}|demo-alpha"
    # No registry run first: the registry is one current snapshot (unpartitioned), already refreshed
    # today, and every tenant×date partition runs on it.
    broken = product.cli("odoo", "connect", "--tenant", "demo-alpha", "--url", "http://127.0.0.1:9", "--db", "sandbox",
                         "--protocol", "jsonrpc", "--login", "admin", "--secret-env", "ODOO_SANDBOX_KEY",
                         "--no-check")  # fmt: skip
    assert broken.returncode == 0, broken.stderr
    partners_before = odoo_records(product, "res.partner", ["company_registry"])
    launch_partition(walk, job="tenant_night_job", day=yesterday, tenant="demo-alpha")
    walk.nav("Runs")
    # the run fails (an op's failure is not retried by the daemon: dagster.yaml retry_on_asset_or_op_failure)
    wait_for_runs(walk, job="tenant_night_job", count=1, status="Failure", partition=key)
    walk.shot("partition-failed")
    page.locator("div[data-index]", has_text=f"partition: {key}").first.get_by_role("link", name="View").click()
    page.get_by_text("is unreachable for tenant demo-alpha").first.wait_for()
    walk.shot("failure-names-the-cause")
    repaired = product.cli("odoo", "connect", "--tenant", "demo-alpha", "--url", product.sandbox("ODOO_SANDBOX_URL"),
                           "--db", "sandbox", "--protocol", "jsonrpc", "--login", "admin",
                           "--secret-env", "ODOO_SANDBOX_KEY")  # fmt: skip
    assert repaired.returncode == 0 and repaired.stdout.startswith("connected demo-alpha"), repaired.stdout
    # the caret beside "Re-execute all (*)" opens the menu that holds "From failure"
    page.locator("button:right-of(:text('Re-execute all'))").first.click()
    page.get_by_text("From failure", exact=True).first.click()
    page.get_by_text("Success", exact=True).first.wait_for(timeout=RUN_WAIT_S * 1000)
    walk.shot("reexecuted-from-failure")
    walk.nav("Runs")
    wait_for_runs(walk, job="tenant_night_job", count=1, status="Success", partition=key, failed_before=True)
    walk.shot("partition-succeeded")
    partners = odoo_records(product, "res.partner", ["company_registry"])
    keys = [p["company_registry"] for p in partners if p.get("company_registry")]
    assert len(keys) == len(set(keys)), "duplicate companies in Odoo"
    assert len(partners) >= len(partners_before)  # yesterday's targets overlap today's: no new partner is needed
    leads = [r["x_leadgen_key"] for r in odoo_records(product, "crm.lead", ["x_leadgen_key"])]
    assert len(leads) == len(set(leads)), "duplicate leads in Odoo"


BACKFILL_QUERY = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status partitionNames runs(limit: 10) { runId status tags { key value } } }
  }
}"""


def step_7_backfill_one_tenant_over_3_dates(walk: Walk) -> None:
    """Catalog → the eight tenant×date assets → Materialize selected → 3 past dates × demo-beta →
    Launch backfill; Runs → Backfills shows it until it succeeds, one run per date."""
    page, tenant = walk.page, "demo-beta"
    days = [(sgt_today().date() - timedelta(days=n)).isoformat() for n in (3, 2, 1)]
    keys = [f"{day}|{tenant}" for day in days]  # demo-beta's past nights: none has run yet
    walk.nav("Catalog")
    page.get_by_text("odoo_sync", exact=True).first.wait_for()
    for key in TENANT_ASSETS:  # the registry assets stay unticked: one unpartitioned snapshot
        page.locator(f"label:has([data-testid='checkbox-{key}'])").click()
        assert page.get_by_test_id(f"checkbox-{key}").is_checked(), key
    page.get_by_role("button", name="Materialize selected (8)…").click()
    dialog = page.locator(".bp5-dialog")
    dialog.get_by_text("Launch runs to materialize 8 assets").wait_for()
    date_input = dialog.get_by_role("textbox").first  # the date dimension's partition text
    date_input.fill(f"[{days[0]}...{days[-1]}]")
    date_input.press("Enter")
    dialog.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=tenant).or_(page.get_by_text(tenant, exact=True)).first.click()
    page.keyboard.press("Escape")  # closes the tenant picker, not the dialog
    page.get_by_placeholder("Filter partitions").wait_for(state="hidden")
    dialog.get_by_text("3 partitions", exact=True).wait_for()
    walk.shot("backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"^Created backfill \w+$"))
    toast.wait_for()
    backfill_id = toast.inner_text().split()[-1]
    walk.nav("Runs")
    page.get_by_text("Backfills", exact=True).first.click()
    row = page.locator("div[data-index]", has_text=backfill_id)
    deadline = time.monotonic() + RUN_WAIT_S
    while True:
        row.wait_for()
        text = row.inner_text()
        if "Success" in text:
            break
        if any(word in text for word in ("Failed", "Failure", "Canceled")) or time.monotonic() > deadline:
            pytest.fail(f"backfill {backfill_id} did not succeed:\n{text}\n{walk.product.log_tail()}")
        page.wait_for_timeout(5000)
        page.reload()
    assert "3 partitions" in text, text
    walk.shot("backfill-succeeded")
    row.get_by_role("link", name=backfill_id).click()  # the backfill's page: its partitions, per asset
    for key in keys:
        page.get_by_text(key, exact=True).first.wait_for()
    page.get_by_text("Succeeded", exact=True).first.wait_for()
    walk.shot("backfill-partitions")
    # shown in the browser; GraphQL confirms: one run per date, all demo-beta's, the backfill complete
    backfill = graphql(walk.product, BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill["status"]
    assert sorted(backfill["partitionNames"]) == keys
    runs = backfill["runs"]
    assert sorted(dict((t["key"], t["value"]) for t in r["tags"])["dagster/partition"] for r in runs) == keys
    assert {dict((t["key"], t["value"]) for t in r["tags"]).get("dagster/partition/tenant") for r in runs} == {tenant}
    assert [r["status"] for r in runs] == ["SUCCESS"] * 3
