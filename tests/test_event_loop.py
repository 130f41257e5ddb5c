"""The night stages' event loop (`leadgen_core.event_loop`): uvloop's by default, the standard
library's with LEADGEN_EVENT_LOOP=asyncio, and a clear error for anything else. The stages
themselves run through `event_loop.run` in every stage test of the suite, so those tests exercise
psycopg's async pool, aiohttp and the OpenAI SDK on uvloop's loop."""

from __future__ import annotations

import asyncio

import pytest

from leadgen_core import event_loop
from leadgen_core.errors import ConfigError


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_the_stages_run_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADGEN_EVENT_LOOP", raising=False)
    assert event_loop.loop_kind() == "uvloop"
    assert event_loop.run(_loop_module()).startswith("uvloop")


@pytest.mark.parametrize("value", ["asyncio", " Asyncio "])
def test_leadgen_event_loop_asyncio_keeps_the_standard_librarys_loop(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LEADGEN_EVENT_LOOP", value)
    assert event_loop.loop_kind() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADGEN_EVENT_LOOP", "trio")
    with pytest.raises(ConfigError, match=r"LEADGEN_EVENT_LOOP must be one of uvloop, asyncio, not 'trio'"):
        event_loop.run(_loop_module())


def test_a_huge_refused_value_is_shown_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADGEN_EVENT_LOOP", "x" * 100_000)
    with pytest.raises(ConfigError) as caught:
        event_loop.loop_kind()
    message = str(caught.value)
    assert len(message) < 200, message
    assert "(100000 characters)" in message


def test_without_uvloop_the_standard_loop_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADGEN_EVENT_LOOP", raising=False)
    monkeypatch.setattr(event_loop, "_uvloop_factory", lambda: None)
    assert event_loop.loop_kind() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_run_returns_the_result_and_raises_the_coroutines_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADGEN_EVENT_LOOP", raising=False)

    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    async def fail() -> None:
        raise KeyError("boom")

    assert event_loop.run(answer()) == 42
    with pytest.raises(KeyError, match="boom"):
        event_loop.run(fail())
