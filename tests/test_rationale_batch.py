"""Batched rationales: several leads per LLM request, each lead's answer and token share its own.

Real: the OpenAI simulator on loopback through the product's OpenAI client. The writers that skip
a lead or fail are small in-process stand-ins, because the point there is the batcher's handling
of an answer, not the transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from leadgen_core.errors import VendorUnavailable
from leadgen_core.leads.rationale_batch import RationaleBatcher, token_shares
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.scoring.rationale import batch_rationale_prompt, clean_llm_rationale, parse_batch_rationales
from leadgen_core.vendors.openai_extract import OpenAIExtractor

KEY = "sk-batch-test"


def payload(i: int) -> dict[str, Any]:
    return {
        "company": f"Company {i}",
        "score": round(0.1 + i / 100, 4),
        "bucket": "medium",
        "features": {
            "icp_fit": {
                "label": "ICP fit",
                "value": 1.0,
                "weight": 0.3,
                "contribution": 0.3,
                "in_words": "strong ICP fit",
            },
            "web_presence": {"label": "web presence", "value": 0.0, "weight": 0.1, "contribution": 0.0},
        },
        "facts": {"employees_est": i},
    }


async def _free() -> None:
    return None


def test_token_shares_add_up() -> None:
    assert token_shares(10, 3) == [4, 3, 3] and token_shares(0, 2) == [0, 0] and sum(token_shares(1001, 7)) == 1001


def test_prompt_and_parser_round_trip() -> None:
    system, user = batch_rationale_prompt([payload(1), payload(2)])
    assert "one line per lead" in system and '"ref": "L1"' in user and '"ref": "L2"' in user
    answer = "Here you go:\nL2: Strong ICP fit, weak web presence.\n**L1**: ICP fit carries the score.\nL7: stray"
    assert parse_batch_rationales(answer, ["L1", "L2"]) == {
        "L1": "ICP fit carries the score.",
        "L2": "Strong ICP fit, weak web presence.",
    }


def test_leads_share_requests_and_each_gets_its_own_answer() -> None:
    paced: list[int] = []
    with OpenAISim(api_key=KEY) as sim:

        async def main() -> list[tuple[str | None, int]]:
            writer = OpenAIExtractor(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0)

            async def pace() -> None:
                paced.append(1)

            try:
                batcher = RationaleBatcher(writer, pace=pace, max_tokens_per_lead=120, size=10)
                return await asyncio.gather(*(batcher.submit(payload(i)) for i in range(25)))
            finally:
                await writer.aclose()

        answers = asyncio.run(main())
        requests = sim.requests_to("/v1/chat/completions")
        assert [len(r.json()["messages"][1]["content"].split('"ref"')) - 1 for r in requests] == [10, 10, 5]
        assert len(paced) == 3  # one rate-limit slot per request
        assert sum(tokens for _, tokens in answers) == sim.billable_units
    for i, (text, _) in enumerate(answers):
        expected = f"{payload(i)['company']}: medium ({payload(i)['score']:.2f})"  # its own lead's facts
        assert text is not None and text.startswith(expected), (i, text)
        assert clean_llm_rationale(text) is not None  # usable as it stands


class _Skipping:
    async def complete_text(self, *, system: str, user: str, max_tokens: int) -> tuple[str, int]:
        return "L1: ICP fit is strong.\nL3: Small but a verified email.", 90


class _Down:
    async def complete_text(self, *, system: str, user: str, max_tokens: int) -> tuple[str, int]:
        raise VendorUnavailable("openai", "HTTP 503")


def test_a_skipped_lead_gets_none_and_a_failure_reaches_every_lead() -> None:
    async def run(writer: Any) -> list[Any]:
        batcher = RationaleBatcher(writer, pace=_free, max_tokens_per_lead=120, size=10, window_s=0.01)
        return await asyncio.gather(*(batcher.submit(payload(i)) for i in range(3)), return_exceptions=True)

    first, second, third = asyncio.run(run(_Skipping()))
    assert (first[0], second[0], third[0]) == ("ICP fit is strong.", None, "Small but a verified email.")
    assert first[1] + second[1] + third[1] == 90
    failures = asyncio.run(run(_Down()))
    assert all(isinstance(f, VendorUnavailable) for f in failures)


def test_batch_size_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RationaleBatcher(_Skipping(), pace=_free, max_tokens_per_lead=1, size=0)
