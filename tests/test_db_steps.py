"""A stage's database steps run on the loop's thread for a local server, on worker threads otherwise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from leadgen_core.db import steps


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = steps.inline()
    yield
    steps._inline = before


@pytest.mark.parametrize(
    ("dsn", "local"),
    [
        ("postgresql://app@127.0.0.1:5432/leadgen", True),
        ("postgresql://app@localhost/leadgen", True),
        ("postgresql://app@[::1]:5432/leadgen", True),
        ("host=/tmp/leadgen/pg port=5433 dbname=leadgen user=app", True),  # the embedded server's socket
        ("dbname=leadgen", True),  # no host: the default Unix socket
        ("postgresql://app@db.internal:5432/leadgen", False),
        ("postgresql://app@10.0.0.5/leadgen", False),
        ("host=127.0.0.1,10.0.0.5 dbname=leadgen", False),  # a fail-over list that leaves the machine
        ("not a dsn at all ===", False),
    ],
)
def test_local_servers(dsn: str, local: bool) -> None:
    assert steps.is_local(dsn) is local


def test_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADGEN_DB_STEPS", raising=False)
    assert steps.configure("postgresql://app@127.0.0.1/x") is True
    assert steps.configure("postgresql://app@db.internal/x") is False
    monkeypatch.setenv("LEADGEN_DB_STEPS", "thread")
    assert steps.configure("postgresql://app@127.0.0.1/x") is False
    monkeypatch.setenv("LEADGEN_DB_STEPS", "inline")
    assert steps.configure("postgresql://app@db.internal/x") is True
    monkeypatch.setenv("LEADGEN_DB_STEPS", "sometimes")
    with pytest.raises(ValueError, match="LEADGEN_DB_STEPS must be one of auto, inline, thread, not 'sometimes'"):
        steps.configure("postgresql://app@127.0.0.1/x")


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_a_step_runs_where_the_mode_says_and_returns_or_raises(mode: str) -> None:
    steps.configure("postgresql://app@127.0.0.1/x", mode)

    def step(x: int) -> tuple[int, int]:
        if x < 0:
            raise ValueError("negative")
        return x + 1, threading.get_ident()

    async def go() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        value, ran_on = await steps.db_step(step, 1)
        with pytest.raises(ValueError, match="negative"):
            await steps.db_step(step, -1)
        return value, ran_on, loop_thread

    value, ran_on, loop_thread = asyncio.run(go())
    assert value == 2
    assert (ran_on == loop_thread) is (mode == "inline")
