"""The morning summary (issue 12 §5): one Slack-compatible post per successful tenant night."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import dagster as dg
import pytest

from leadgen_core.clock import today_sg
from leadgen_dagster.partitions import tenant_date_partitions, tenant_partitions
from leadgen_dagster.summary_sensor import build_summary_sensor
from tests.conftest import add_tenant
from tests.dagster_helpers import resources
from tests.test_registry_and_jobs import Webhook

DAY = date(2026, 3, 2)


@pytest.fixture
def instance():  # type: ignore[no-untyped-def]
    with dg.instance_for_test() as inst:
        yield inst


@dg.asset(name="daily_targets", partitions_def=tenant_date_partitions)
def fake_targets() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"targets": 7, "items": 7})


@dg.asset(name="lead_scores", deps=[fake_targets], partitions_def=tenant_date_partitions)
def fake_scores() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"bucket_high": 2, "bucket_medium": 3, "bucket_low": 2, "units_openai": 900})


@dg.asset(name="odoo_sync", deps=[fake_scores], partitions_def=tenant_date_partitions)
def fake_sync() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"synced_res.partner": 7, "synced_crm.lead": 2})


def evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, result: Any, app_dsn: str) -> None:
    """Evaluate SENSOR as the daemon would for RESULT's successful run (resources read the env now)."""
    success = next(e for e in result.all_events if e.event_type_value == "PIPELINE_SUCCESS")
    with dg.build_run_status_sensor_context(
        sensor_name="night_summary_sensor",
        dagster_event=success,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={k: v for k, v in resources(app_dsn).items() if k in ("postgres", "settings", "alerts")},
    ) as context:
        sensor(context)


def test_successful_night_posts_one_summary_with_every_figure(clean_db, owner_conn, instance, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    add_tenant(owner_conn, "alpha")
    owner_conn.execute("INSERT INTO tenant_budgets (tenant_id, vendor, daily_cap) VALUES ('alpha', 'tavily', 50)")
    owner_conn.execute(
        "INSERT INTO vendor_usage (tenant_id, usage_date, vendor, units, calls) VALUES"
        " ('alpha', %s, 'tavily', 12, 12), ('alpha', %s, 'openai', 900, 3)",
        (today_sg(), today_sg()),
    )
    instance.add_dynamic_partitions(tenant_partitions.name or "tenants", ["alpha"])
    sensor = build_summary_sensor("odoo_sync")
    with Webhook() as hook:
        monkeypatch.setenv("LEADGEN_ALERT_WEBHOOK_URL", f"{hook.base_url}/hook")
        monkeypatch.setenv("SLA_MINUTES", "30")
        key = f"{DAY.isoformat()}|alpha"
        result = dg.materialize([fake_targets, fake_scores, fake_sync], instance=instance, partition_key=key)
        run_id = result.dagster_run.run_id
        owner_conn.execute(
            "INSERT INTO run_stage_stats (tenant_id, run_date, stage, dagster_run_id, started_at, finished_at)"
            " VALUES ('alpha', %s, 'daily_targets', %s, now() - interval '12 minutes', now() - interval '10 minutes'),"
            " ('alpha', %s, 'odoo_sync', %s, now() - interval '1 minute', now())",
            (DAY, run_id, DAY, run_id),
        )
        monkeypatch.delenv("LEADGEN_NOTIFY_SUCCESS", raising=False)
        evaluate(sensor, instance, result, clean_db.app_dsn)
        assert hook.requests_to("/hook") == []  # off by default
        monkeypatch.setenv("LEADGEN_NOTIFY_SUCCESS", "true")
        evaluate(sensor, instance, result, clean_db.app_dsn)
        posts = [r.json() for r in hook.requests_to("/hook")]
        assert len(posts) == 1
        body = json.dumps(posts[0])
        assert "alpha 2026-03-02" in posts[0]["text"] and "7 targets" in posts[0]["text"]
        assert "*Targets:* 7" in body and "high 2, medium 3, low 2" in body
        assert "crm.lead 2, res.partner 7" in body
        assert "tavily: 0 this night; 12 of 50 today" in body and "openai: 900 this night; 900 of " in body
        assert "12.0 min, within the 30 min SLA" in body
        assert f"/runs/{run_id}|Open the run in Dagster" in body
        # a run that did not reach the terminal stage (a failed night, one stage from the UI): no summary
        partial = dg.materialize([fake_targets], instance=instance, partition_key=key)
        evaluate(sensor, instance, partial, clean_db.app_dsn)
        assert len(hook.requests_to("/hook")) == 1
