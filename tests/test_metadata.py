"""Metadata Dagster can plot, and a top-leads table that renders registry names as text.

Pure tests: the metadata helpers of the stage frame and the markdown preview of leadgen_core; no
database. The materialised metadata of each stage is checked in tests/test_odoo_sync.py and the
browser walkthrough (tests/e2e).
"""

from __future__ import annotations

import dagster as dg
import pytest

from leadgen_core.leads.preview import LeadRow, markdown_table
from leadgen_dagster.assets.crm import synced_by_model
from leadgen_dagster.definitions import defs
from leadgen_dagster.stage import CODE_VERSION, metric_key, numeric_metadata


@pytest.mark.parametrize(
    ("prefix", "name", "key"),
    [
        ("units_", "tavily", "units_tavily"),
        ("degraded_", "budget:tavily", "degraded_budget_tavily"),
        ("degraded_", "vendor_down:lusha", "degraded_vendor_down_lusha"),
        ("synced_", "res.partner", "synced_res_partner"),
        ("synced_", "crm.lead", "synced_crm_lead"),
        ("bucket_", "high", "bucket_high"),
    ],
)
def test_metric_keys_are_plain_identifiers(prefix: str, name: str, key: str) -> None:
    assert metric_key(prefix, name) == key


def test_numeric_metadata_is_one_int_per_key() -> None:
    meta = numeric_metadata("units_", {"openai": 1200, "tavily": 3})
    assert meta == {"units_openai": dg.MetadataValue.int(1200), "units_tavily": dg.MetadataValue.int(3)}


def test_odoo_items_become_one_count_per_model() -> None:
    items = {"res.partner:created": 4, "res.partner:updated": 2, "res.partner:unchanged": 1, "crm.lead:created": 3,
             "crm.lead:below_threshold": 5, "crm.lead:error": 1}  # fmt: skip
    assert synced_by_model(items) == {"res.partner": 7, "crm.lead": 3}


def test_every_asset_has_a_code_version() -> None:
    graph = defs.resolve_asset_graph()
    versions = {key.to_user_string(): graph.get(key).code_version for key in graph.materializable_asset_keys}
    assert versions and set(versions.values()) == {CODE_VERSION}, versions


HOSTILE = "[click](http://evil.test) ![img](http://evil.test/x.png) <img src=x onerror=alert(1)> a|b &amp; *bold*"


def test_top_leads_table_escapes_registry_names() -> None:
    table = markdown_table([LeadRow(HOSTILE, "201912345A", 0.91234, "high", "template", "Scored 0.91 (high).")])
    row = table.splitlines()[2]
    cells = row.split(" | ")
    assert cells[1] == (
        r"\[click\]\(http://evil.test\) \!\[img\]\(http://evil.test/x.png\) "
        r"\<img src=x onerror=alert\(1\)\> a\|b \&amp; \*bold\*"
    )
    assert "0.91 |" in row and "0.9123" not in row
    # nothing opens a link, an image, a tag or an entity: each such character is escaped
    for ch in "[]()<>&!*|":
        for i, c in enumerate(cells[1]):
            if c == ch:
                assert cells[1][i - 1] == "\\", (ch, cells[1])


def test_night_summary_rows_are_words_and_numbers() -> None:
    from leadgen_dagster.cli.night import SUMMARY_HEADER, log_config, stage_line

    meta = {"items": 60, "done": 43, "degraded": 17, "failed": 0, "duration_s": 16.627, "units_tavily": 12,
            "units_openai": 0, "degraded_site_down": 9, "degraded_no_site": 5, "degraded_budget_tavily": 3,
            "degraded_robots": 1}  # fmt: skip
    line = stage_line("crawled_sites", meta)
    assert line.split()[:5] == ["crawled_sites", "60", "43", "17", "16.6s"]
    assert "units: tavily 12" in line and "openai" not in line  # a vendor not used is not listed
    assert "degraded: site_down 9, no_site 5, budget_tavily 3" in line and "robots" not in line  # top 3
    assert "{" not in line and "stage" in SUMMARY_HEADER and "duration" in SUMMARY_HEADER
    assert log_config(False)["loggers"]["console"]["config"]["log_level"] == "INFO"
    assert log_config(True)["loggers"]["console"]["config"]["log_level"] == "DEBUG"
