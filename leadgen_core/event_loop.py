"""The event loop the night stages run on: uvloop's, unless turned off.

Every stage is one `asyncio` program per run worker (vendor requests over aiohttp, the OpenAI SDK's
client, psycopg's async pool), and a good part of a worker's CPU is the loop's own bookkeeping:
selector wake-ups, callbacks, transports. uvloop (libuv, in C; already installed with
dagster-webserver's uvicorn) does that work for less CPU than the standard library's selector loop;
BENCHMARKS.md has the figures.

`LEADGEN_EVENT_LOOP=asyncio` keeps the standard library's loop (also used where uvloop cannot be
imported, such as on Windows).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")


def loop_kind() -> str:
    """'uvloop' or 'asyncio': what `run` will use in this process."""
    wanted = os.environ.get("LEADGEN_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if wanted not in CHOICES:
        raise ValueError(f"LEADGEN_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {wanted!r}")
    if wanted == "uvloop" and _uvloop_factory() is None:
        return "asyncio"
    return wanted


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_kind` names."""
    try:
        factory = _uvloop_factory() if loop_kind() == "uvloop" else None
    except ValueError:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
