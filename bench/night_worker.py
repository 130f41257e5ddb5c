"""One tenant's night in its own process, as a run worker executes it (started by bench.nightly).

    python -m bench.night_worker --tenant T --day YYYY-MM-DD --out FILE [--profile FILE]
        [--dry-run --time-scale K]

It executes `tenant_night_job` of `leadgen_dagster.definitions` for the partition `day|tenant`
with `execute_in_process` on the Dagster instance in DAGSTER_HOME, with the definitions' own
resources (which read LEADGEN_APP_DATABASE_URL and the sandbox variables from the environment the
parent set). A sampler thread records (wall clock, process CPU) every SAMPLE_S, so the parent can
split the CPU by stage with the stage times in `run_stage_stats`. FILE receives one JSON object:
success, failed steps, CPU, peak RSS, the transactions the product's pools opened and the samples.
`--profile` writes cProfile stats of the run in thread CPU time (the event loop's thread; database
calls made in worker threads show as their waits).
`--dry-run` runs the night with the `leadgen/dry_run=true` tag (nothing paid, nothing stored) and
adds to FILE the forecast `leadgen night --dry-run` prints (`night_forecast_of`, with the tenant's
history of real nights before DAY), for a sandbox K times faster than real (`--time-scale`).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

SAMPLE_S = 0.25
TENANT_TAG = "leadgen/tenant"


@dataclass
class CpuSampler:
    """(time.time(), process CPU seconds) every SAMPLE_S until stopped."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), time.process_time()))
            self._stop.wait(SAMPLE_S)

    def __enter__(self) -> CpuSampler:
        self._thread = threading.Thread(target=self._run, name="bench-cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), time.process_time()))


class GcTimer:
    """Seconds the cyclic garbage collector ran, and its collections per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def failed_steps(result: Any) -> list[str]:
    """`step: error` for every failed step of an execute_in_process result."""
    out = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            out.append(f"{event.step_key}: {error.message.strip() if error else 'failed'}"[:2000])
    return out


def failed_checks(result: Any) -> list[str]:
    out = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            out.append(event.event_specific_data.check_name)
    return out


def forecast_report(result: Any, tenant: str, day: date, *, time_scale: float) -> dict[str, Any]:
    """What the dry run RESULT forecasts for the night, as `leadgen night --dry-run` computes it."""
    from leadgen_core.settings import Settings
    from leadgen_dagster.cli.night import night_forecast_of, tenant_history

    history = tenant_history(tenant, day)
    fc = night_forecast_of(result, Settings(), time_scale=time_scale, history=history)
    return {
        "targets": fc.targets,
        "calls": dict(fc.calls),
        "units": dict(fc.units),
        "seconds": fc.seconds,
        "limits_seconds": fc.limits_seconds,
        "history_seconds": fc.history_seconds,
        "history_nights": history.nights if history is not None else 0,
    }


def run_night(
    tenant: str, day: date, *, profile: Path | None, dry_run: bool = False, time_scale: float = 1.0
) -> dict[str, Any]:
    import dagster as dg

    from leadgen_dagster.definitions import defs
    from leadgen_dagster.tags import DRY_RUN_TAG

    job = defs.resolve_job_def("tenant_night_job")
    with dg.DagsterInstance.get() as instance, CpuSampler() as sampler, GcTimer() as collector:
        started = time.time()

        def execute() -> Any:
            return job.execute_in_process(
                partition_key=f"{day.isoformat()}|{tenant}",
                instance=instance,
                tags={TENANT_TAG: tenant, **({DRY_RUN_TAG: "true"} if dry_run else {})},
                raise_on_error=False,
            )

        if profile is None:
            result = execute()
        else:
            import cProfile

            # CPU time of the event loop's thread, so a busy machine does not inflate the figures
            with cProfile.Profile(time.thread_time) as prof:
                result = execute()
            prof.dump_stats(str(profile))
        finished = time.time()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    from leadgen_core.db.pool import transactions_opened

    forecast = forecast_report(result, tenant, day, time_scale=time_scale) if dry_run and result.success else None
    return {
        "tenant": tenant,
        "success": bool(result.success),
        "run_id": result.run_id,
        "failed_steps": failed_steps(result),
        "failed_checks": failed_checks(result),
        "started": started,
        "finished": finished,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "cpu_sys_s": usage.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
        "gc_s": round(collector.seconds, 3),
        "gc_collections": collector.collections,
        "db_transactions": transactions_opened(),  # the product's pools' (not Dagster's event log)
        "samples": sampler.samples,
        **({"forecast": forecast} if forecast is not None else {}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.night_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--day", required=True, type=date.fromisoformat)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    report = run_night(args.tenant, args.day, profile=args.profile, dry_run=args.dry_run, time_scale=args.time_scale)
    args.out.write_text(json.dumps(report), encoding="utf-8")
    raise SystemExit(0 if report["success"] else 1)


if __name__ == "__main__":
    main()
