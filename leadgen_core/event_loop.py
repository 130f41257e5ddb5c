"""The event loop the night stages run on: uvloop's, unless turned off.

Every stage is one `asyncio` program per run worker (vendor requests over aiohttp, the OpenAI SDK's
client, psycopg's async pool), and a good part of a worker's CPU is the loop's own bookkeeping:
selector wake-ups, callbacks, transports. uvloop (libuv, in C; already installed with
dagster-webserver's uvicorn) does that work for less CPU than the standard library's selector loop;
BENCHMARKS.md has the figures.

`LEADGEN_EVENT_LOOP=asyncio` keeps the standard library's loop (also used where uvloop cannot be
imported, such as on Windows). Any other value is a ConfigError: the CLI prints it on one line, and a
stage fails with it before it starts any work.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from leadgen_core.errors import ConfigError

T = TypeVar("T")

CHOICES = ("uvloop", "asyncio")
SHOWN_CHARS = 40  # of a refused value: enough to recognise it, never a screenful of hostile input


def _factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The loop LEADGEN_EVENT_LOOP asks for, as (kind, factory); the factory is None for the standard loop."""
    wanted = os.environ.get("LEADGEN_EVENT_LOOP", "uvloop").strip().lower() or "uvloop"
    if wanted not in CHOICES:
        shown = wanted if len(wanted) <= SHOWN_CHARS else f"{wanted[:SHOWN_CHARS]}... ({len(wanted)} characters)"
        raise ConfigError(f"LEADGEN_EVENT_LOOP must be one of {', '.join(CHOICES)}, not {shown!r}")
    factory = _uvloop_factory() if wanted == "uvloop" else None
    return ("uvloop" if factory is not None else "asyncio"), factory


def loop_kind() -> str:
    """'uvloop' or 'asyncio': what `run` will use in this process."""
    return _factory()[0]


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_kind` names."""
    try:
        _, factory = _factory()
    except ConfigError:
        main.close()  # never started: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
