"""registry → tenant nights: `night_launcher_sensor` starts each night once its registry run is over.

The 01:00 schedule launches `registry_refresh_job` tagged `leadgen/night_date=D`. This sensor
watches those runs (a sensor on the registry job's run status, written as one plain sensor so
that the fresh path, the failure path and the deadline share one cursor and one set of run keys):

* the registry run for D succeeded → one `tenant_night_job` run per active tenant for D;
* it failed for good (no run retry pending), or is still unfinished REGISTRY_DEADLINE_MINUTES after
  the night's 01:00 (or after a caught-up registry run was created) → the same runs, tagged
  `leadgen/registry_stale=true`, on the last good snapshot, and ONE alert for the night.

No run waits for the registry while holding a slot. Run keys `night-D-tenant` make a launch
happen once even if the cursor is lost; the cursor keeps the alert to one per night. The failure
alert sensor leaves these registry runs to this sensor, so a failed registry is one alert, not two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from leadgen_core.alerts import Alert, post_alert
from leadgen_core.clock import SGT
from leadgen_core.registry.upsert import latest_refresh
from leadgen_dagster.jobs import registry_refresh_job
from leadgen_dagster.resources import AlertsResource, PostgresResource, SettingsResource
from leadgen_dagster.schedules import night_run_requests
from leadgen_dagster.tags import NIGHT_DATE_TAG, NIGHT_START_TAG, will_retry

LOOKBACK_RUNS = 100
CURSOR_NIGHTS = 14
FINISHED_BADLY = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass(frozen=True)
class NightOpening:
    """What to do for one night: launch it fresh, launch it stale (with why), or keep waiting (None)."""

    day: date
    started: str
    stale: bool
    reason: str


def _registry_runs(instance: dg.DagsterInstance, since: date) -> dict[date, list[dg.RunRecord]]:
    """Registry runs the schedule launched, newest first, by the night they open (nights since SINCE)."""
    records = instance.get_run_records(dg.RunsFilter(job_name=registry_refresh_job.name), limit=LOOKBACK_RUNS)
    by_night: dict[date, list[dg.RunRecord]] = {}
    for record in records:
        tag = record.dagster_run.tags.get(NIGHT_DATE_TAG)
        try:
            day = date.fromisoformat(tag) if tag else None
        except ValueError:
            day = None
        if day is not None and day >= since:
            by_night.setdefault(day, []).append(record)
    return by_night


def opening(day: date, records: list[dg.RunRecord], *, now: datetime, deadline_minutes: int) -> NightOpening | None:
    """Decide night DAY from its registry runs (newest first)."""
    newest = records[0].dagster_run
    started = newest.tags.get(NIGHT_START_TAG) or datetime.combine(day, datetime.min.time(), SGT).isoformat()
    if any(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records):
        return NightOpening(day, started, stale=False, reason="")
    if newest.status in FINISHED_BADLY and not will_retry(newest.tags):
        return NightOpening(
            day, started, stale=True, reason=f"registry run {newest.run_id} ended {newest.status.value}"
        )
    created = records[0].create_timestamp
    clock = max(datetime.fromisoformat(started), created if created.tzinfo else created.replace(tzinfo=UTC))
    if now >= clock + timedelta(minutes=deadline_minutes):
        why = (
            f"registry run {newest.run_id} not finished {deadline_minutes} min after {clock.astimezone(SGT):%H:%M} SGT"
        )
        return NightOpening(day, started, stale=True, reason=why)
    return None


def _alert(alerts: AlertsResource, *, ui: str, night: NightOpening, snapshot: date | None, run_id: str) -> str | None:
    url = alerts.url()
    if url is None:
        return "LEADGEN_ALERT_WEBHOOK_URL not set"
    on = snapshot.isoformat() if snapshot else "no snapshot at all"
    return post_alert(
        url,
        Alert(
            f"leadgen registry not ready for night {night.day}: tenant nights run on snapshot {on} (registry_stale)",
            None,
            night.day.isoformat(),
            registry_refresh_job.name,
            night.reason,
            f"{ui.rstrip('/')}/runs/{run_id}",
        ),
    )


@dg.sensor(
    job_name="tenant_night_job",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts each tenant's night once the night's registry run succeeded, or on the last good snapshot "
    "(registry_stale, one alert) when it failed or missed REGISTRY_DEADLINE_MINUTES.",
)
def night_launcher_sensor(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    settings: SettingsResource,
    alerts: AlertsResource,
) -> dg.SensorResult:
    s = settings.get()
    now = datetime.now(SGT)
    handled: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    since = now.date() - timedelta(days=s.catchup_nights + 1)
    requests: list[dg.RunRequest] = []
    for day, records in sorted(_registry_runs(context.instance, since).items()):
        if day.isoformat() in handled:
            continue
        night = opening(day, records, now=now, deadline_minutes=s.registry_deadline_minutes)
        if night is None:
            continue
        requests += night_run_requests(
            instance=context.instance, postgres=postgres, settings=s, day=day, started=night.started, stale=night.stale
        )
        handled[day.isoformat()] = "stale" if night.stale else "fresh"
        if night.stale:
            with postgres.shared(operation="night launcher") as conn:
                snapshot = latest_refresh(conn)
            context.log.warning(f"night {day}: {night.reason}; running on snapshot {snapshot}")
            problem = _alert(
                alerts, ui=s.ui_base_url, night=night, snapshot=snapshot, run_id=records[0].dagster_run.run_id
            )
            if problem:
                context.log.warning(f"registry alert not delivered: {problem}")
    kept = dict(sorted(handled.items())[-CURSOR_NIGHTS:])
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(kept))
