"""Where a stage's short database steps run: on the event loop's thread when the server is on this
machine, on a worker thread otherwise.

The stages are asynchronous and the pool is synchronous, so every ledger reservation, settlement,
rate-limiter booking and store write is a small synchronous transaction that the loop awaits with
`db_step`. Through `asyncio.to_thread` each costs a hand-off to a worker thread and back (a future,
a queue, a wake-up of the loop) and the interpreter lock passing between threads; against a local
server the transaction itself takes a few hundred microseconds, less than that hand-off costs. So
with the server on loopback or a Unix socket a step runs inline: it blocks the loop for its own
round trips only, and a 200-company night spent 66 ms of CPU a company inline against 77 through
threads (BENCHMARKS.md, 2026-12-06). A remote server's round trips would stall every other task of
the stage, so there the steps go to worker threads, as before.

`LEADGEN_DB_STEPS` = `auto` (the default: inline for a local server), `inline` or `thread`.
Running inline is safe because no coroutine holds a pooled connection across an `await` (every
transaction is a synchronous function), so a step waiting for a connection only ever waits for a
worker thread's step to finish; and a cancelled caller cannot lose a step's result, since an
inline step has no suspension point.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Callable
from typing import Literal, TypeVar

import psycopg.conninfo

T = TypeVar("T")
Mode = Literal["auto", "inline", "thread"]
MODES: tuple[Mode, ...] = ("auto", "inline", "thread")
_inline = False


def is_local(dsn: str) -> bool:
    """True when every host DSN names is this machine: a Unix socket (no host, or a path) or loopback."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return False
    hosts = str(params.get("host") or "").split(",")
    for host in (h.strip() for h in hosts):
        if not host or host.startswith("/") or host == "localhost":
            continue
        try:
            if not ipaddress.ip_address(host.strip("[]")).is_loopback:
                return False
        except ValueError:
            return False  # a name: it may be another machine
    return True


def configure(dsn: str, mode: str | None = None) -> bool:
    """Decide for this process from MODE (default LEADGEN_DB_STEPS, else auto) and DSN; True when inline."""
    global _inline
    chosen = (mode or os.environ.get("LEADGEN_DB_STEPS") or "auto").strip().lower()
    if chosen not in MODES:
        raise ValueError(f"LEADGEN_DB_STEPS must be one of {', '.join(MODES)}, not {chosen!r}")
    _inline = chosen == "inline" or (chosen == "auto" and is_local(dsn))
    return _inline


def inline() -> bool:
    return _inline


async def db_step(fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
    """FN(*ARGS, **KWARGS), a synchronous database step: inline or on a worker thread (see above)."""
    if _inline:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)
