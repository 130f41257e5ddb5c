"""The run worker's collector tuning (`leadgen_core.gc_tuning`), checked in fresh interpreters so
this test process keeps its own settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import gc, json
from leadgen_core.gc_tuning import tune_for_stages
before = gc.get_threshold()
tuned = tune_for_stages()
frozen = gc.get_freeze_count()
again = tune_for_stages()  # once per process: nothing more is frozen
print(json.dumps({"before": before, "after": gc.get_threshold(), "tuned": tuned, "again": again,
                  "frozen": frozen, "frozen_again": gc.get_freeze_count()}))
"""


def _probe(env_value: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "LEADGEN_GC_TUNING"}
    if env_value is not None:
        env["LEADGEN_GC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_the_first_stage_freezes_what_imports_left_and_raises_the_thresholds() -> None:
    got = _probe(None)
    assert got["after"] == [7000, 20, 20] != got["before"]
    assert got["tuned"] is True and got["again"] is True
    assert isinstance(got["frozen"], int) and got["frozen"] > 1000  # the imports' objects
    assert got["frozen_again"] == got["frozen"]


@pytest.mark.parametrize("value", ["0", "off", "false"])
def test_leadgen_gc_tuning_off_keeps_the_interpreters_defaults(value: str) -> None:
    got = _probe(value)
    assert got["after"] == got["before"] and got["tuned"] is False and got["frozen"] == 0


SIMULATORS_PROBE = """
import gc, json
from leadgen_core.gc_tuning import tune_for_simulators, tune_for_stages
from leadgen_core.sandbox.cluster import SandboxCluster
with SandboxCluster() as cluster:
    tuned = tune_for_simulators()
    frozen = gc.get_freeze_count()
    print(json.dumps({"after": gc.get_threshold(), "tuned": tuned, "frozen": frozen,
                      "stages_again": tune_for_stages(), "frozen_again": gc.get_freeze_count()}))
"""


def test_a_process_serving_the_simulators_is_tuned_once_as_a_run_worker_is() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LEADGEN_GC_TUNING"}
    out = subprocess.run([sys.executable, "-c", SIMULATORS_PROBE], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["after"] == [7000, 20, 20] and got["tuned"] is True
    assert got["frozen"] > 1000 and got["frozen_again"] == got["frozen"]  # one freeze a process
