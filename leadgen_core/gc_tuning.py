"""The cyclic garbage collector, tuned once per process for the night stages.

A stage allocates many short-lived objects (answers, rows, passages, tasks). Reference counting
frees nearly all of them at once; the cyclic collector only finds cycles, but with CPython's
default thresholds (700, 10, 10) it ran about 200 times in a 200-company night, and each older-
generation pass walked the million-odd objects that Dagster, pydantic and the SDKs leave behind
after import: 0.41–0.46 s of a run worker's 9.4–11 s of CPU (`bench.nightly`'s `gc_s`,
BENCHMARKS.md 2026-12-06). So, at the first night stage of a process, the objects alive then are
moved out of the collector's sight (`gc.freeze`: imports and definitions live as long as the
process anyway) and the youngest generation is collected every GEN0_THRESHOLD allocations instead
of 700: 0.07–0.09 s, with peak memory unchanged. Cycles created later are still collected, later.

`LEADGEN_GC_TUNING=0` keeps the interpreter's defaults.
"""

from __future__ import annotations

import gc
import os

GEN0_THRESHOLD = 7_000
OLDER_THRESHOLD = 20
_done = False


def tune_for_stages() -> bool:
    """Freeze what is alive and raise the thresholds, once per process; False when turned off."""
    global _done
    if os.environ.get("LEADGEN_GC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not _done:
        gc.freeze()
        gc.set_threshold(GEN0_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
        _done = True
    return True


def tune_for_simulators() -> bool:
    """The same tuning, once per process, for a process that serves the sandbox's simulators
    (`leadgen sandbox up`, `leadgen dev`, `bench.nightly`): their request logs and the Odoo
    simulator's records pile up as long-lived objects, and an older-generation pass walked them
    again and again (`bench.nightly`'s `bench_process_gc_s`: 5.3 s of the simulators' 67 s of CPU in
    the ten-tenant night before, BENCHMARKS.md 2026-12-07, third section)."""
    return tune_for_stages()
