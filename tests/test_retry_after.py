"""Retry-After: one parser for every client, honoured as sent up to each vendor's maximum.

Real: a loopback Tavily simulator answering 429 with `Retry-After` over real sockets, and the
product's HTTP helper. Pure: the parser, the per-vendor maxima and the Tavily key kind's rate.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadgen_core import retry_after
from leadgen_core.acra import api as acra_api
from leadgen_core.acra import download as acra_download
from leadgen_core.acra.download import DownloadOptions, download_csv
from leadgen_core.enrich.clients import VendorConfig, vendor_rate
from leadgen_core.errors import RateLimited
from leadgen_core.odoo import client as odoo_client
from leadgen_core.sandbox.acra import AcraSim
from leadgen_core.sandbox.base import FaultConfig
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.settings import Settings
from leadgen_core.vendors import OpenAIExtractor, TavilyClient
from leadgen_core.vendors import http as vendor_http
from leadgen_core.vendors.http import RetryPolicy
from leadgen_core.vendors.limits import RETRY_AFTER_MAX_S, ZEROBOUNCE_BATCH_BLOCK_S
from tests.test_vendor_clients import refuse

TAVILY_KEY = "sandbox-tavily-key"
OPENAI_KEY = "sandbox-openai-key"
NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),  # honoured as sent: no 30 s cap in the parser
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Mon, 02 Mar 2026 12:10:00 GMT", 600.0),
        ("Mon, 02 Mar 2026 11:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_the_one_parser_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    assert retry_after.retry_after_seconds(header, now=NOW) == seconds


def test_every_client_uses_the_one_parser() -> None:
    assert acra_api.retry_after_seconds is retry_after.retry_after_seconds
    assert odoo_client.retry_after_seconds is retry_after.retry_after_seconds
    assert vendor_http.retry_after_seconds is retry_after.retry_after_seconds
    assert vendor_http.parse_retry_after is retry_after.parse_retry_after


def test_each_vendor_waits_at_least_its_documented_block() -> None:
    config = VendorConfig()
    assert config.retry("zerobounce").max_retry_after_s >= ZEROBOUNCE_BATCH_BLOCK_S == 600
    assert config.retry("tavily").max_retry_after_s >= 60  # a per-minute window
    assert config.retry("lusha").max_retry_after_s >= 3_600  # the hourly quota
    assert config.retry().max_retry_after_s == 30.0  # no vendor named: the generic policy


async def _search(sim: TavilySim, policy: RetryPolicy) -> object:
    async with TavilyClient(base_url=sim.base_url, api_key=TAVILY_KEY, retry=policy) as client:
        return await client.search("Acme Robotics Pte Ltd Singapore official website")


def test_retry_after_within_the_maximum_is_slept_as_sent() -> None:
    # a backoff would be 10-20 s and the maximum 20 s: finishing after 1.2 s and within 5 s proves
    # the header's 1.2 s was slept as sent (the 429s are counted, not timed: see `refuse`)
    policy = RetryPolicy(max_attempts=3, base_backoff_s=20.0, max_backoff_s=20.0, max_retry_after_s=20.0)
    with TavilySim(api_key=TAVILY_KEY, faults=FaultConfig(retry_after_s=1.2)) as sim:
        refuse(sim, 1)
        started = time.monotonic()
        asyncio.run(_search(sim, policy))
        elapsed = time.monotonic() - started
        statuses = [r.status for r in sim.log]
    assert statuses == [429, 200]
    assert 1.15 <= elapsed < 5.0


def test_retry_after_beyond_the_maximum_gives_up_at_once_with_the_wait() -> None:
    policy = RetryPolicy(max_attempts=4, max_retry_after_s=2.0)
    with TavilySim(api_key=TAVILY_KEY, faults=FaultConfig(retry_after_s=45)) as sim:
        refuse(sim, after=1)
        asyncio.run(_search(sim, policy))
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            asyncio.run(_search(sim, policy))
        elapsed = time.monotonic() - started
        statuses = [r.status for r in sim.log]
    assert caught.value.retry_after == 45.0  # as sent, not capped at 30 (the caller reschedules)
    assert statuses == [200, 429] and elapsed < 5.0  # no retry into the block (45 s, or 3 x 2 s capped)


def test_tavily_key_kind_sets_the_default_rate() -> None:
    dev = Settings(TAVILY_KEY_KIND="development")  # type: ignore[call-arg]
    prod = Settings(TAVILY_KEY_KIND="production")  # type: ignore[call-arg]
    assert vendor_rate("tavily", dev).per_s == pytest.approx(100 / 60)
    assert vendor_rate("tavily", prod).per_s == pytest.approx(1000 / 60)
    assert vendor_rate("tavily", Settings(TAVILY_KEY_KIND="development", TAVILY_RPM=30)).per_s == 0.5  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="TAVILY_KEY_KIND"):
        Settings(TAVILY_KEY_KIND="staging")  # type: ignore[call-arg]


def test_a_wait_past_the_stage_deadline_fails_at_once_instead_of_sleeping() -> None:
    # the vendor's 20 s is within Tavily's 60 s maximum, but the stage has under 8 s left: no sleep
    policy = RetryPolicy(max_attempts=4, max_retry_after_s=RETRY_AFTER_MAX_S["tavily"])
    with TavilySim(api_key=TAVILY_KEY, faults=FaultConfig(retry_after_s=20)) as sim:
        refuse(sim, after=1)  # the first search passes, the second is told to come back in 20 s

        async def twice() -> None:
            async with TavilyClient(base_url=sim.base_url, api_key=TAVILY_KEY, retry=policy) as client:
                client.deadline = time.monotonic() + 8.0
                await client.search("Acme Robotics Pte Ltd Singapore official website")
                await client.search("Beta Foods Pte Ltd Singapore official website")

        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            asyncio.run(twice())
        elapsed = time.monotonic() - started
        statuses = [r.status for r in sim.log]
    assert statuses == [200, 429] and elapsed < 8.0  # neither the 20 s nor a sleep until the deadline
    assert caught.value.retry_after == 20.0 and "outlast the stage's time budget" in str(caught.value)


def test_openai_retry_after_is_reported_as_sent_not_capped_at_30s() -> None:
    async def twice(client: OpenAIExtractor) -> None:
        async with client:
            await client.complete_text(system="s", user="u", max_tokens=5)
            await client.complete_text(system="s", user="u", max_tokens=5)

    with OpenAISim(api_key=OPENAI_KEY, faults=FaultConfig(retry_after_s=45)) as sim:
        refuse(sim, after=1)  # the first call passes, the second is refused
        extractor = OpenAIExtractor(base_url=f"{sim.base_url}/v1", api_key=OPENAI_KEY, max_retries=0)
        with pytest.raises(RateLimited) as caught:
            asyncio.run(twice(extractor))
    assert caught.value.retry_after == 45.0  # the caller reschedules after the wait OpenAI asked for
    assert RETRY_AFTER_MAX_S["openai"] >= 60  # the SDK sleeps through up to a minute (its per-minute limits)


def test_acra_has_one_retry_loop_under_the_shared_policy() -> None:
    # the datastore API and the download API send every request through the same loop
    assert acra_download.get_with_retries is acra_api.get_with_retries
    assert not hasattr(acra_api, "backoff_delay") and not hasattr(acra_download, "retry_after_seconds")
    policy = acra_api.retry_policy(5, 0.5)
    assert isinstance(policy, RetryPolicy) and policy.max_retry_after_s == RETRY_AFTER_MAX_S["datagov"] >= 60
    assert (policy.max_attempts, policy.base_backoff_s, policy.max_backoff_s) == (5, 0.5, acra_api.MAX_BACKOFF_S)


def test_acra_download_gives_up_at_once_on_a_retry_after_beyond_its_maximum(tmp_path: Path) -> None:
    # initiate-download passes, poll-download is told to come back in 2 minutes: no 2-minute sleep
    with AcraSim(rows=5, faults=FaultConfig(retry_after_s=120)) as sim:
        refuse(sim, after=1)
        options = DownloadOptions(base_url=sim.base_url, poll_interval_s=0, max_polls=3, backoff_s=0.01)
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            asyncio.run(download_csv(sim.resource_id, tmp_path / "x.csv", options=options))
        elapsed = time.monotonic() - started
        assert [r.status for r in sim.dataset_requests()] == [201, 429]  # initiated, then told to wait
    assert caught.value.retry_after == 120.0 and elapsed < 5.0  # not the 2 minutes
