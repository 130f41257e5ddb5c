"""The website and OpenAI simulators under the `realistic` sandbox profile.

Real: both simulators are real HTTP servers on loopback ports; pages are fetched with httpx and
parsed by the crawler's own parser; OpenAI is called through the official SDK (base_url pointed
at the simulator), so headers, 429 bodies and `usage` are read as the product reads them.
Simulated: the sites' content and OpenAI's service, whose limits are gpt-4o-mini's documented
tier limits (`leadgen_core.vendors.openai_tiers`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadgen_core.crawler.parse import parse_page
from leadgen_core.sandbox import web_realistic
from leadgen_core.sandbox.openai_quota import ModelQuota
from leadgen_core.sandbox.openai_sim import OpenAISim, count_tokens, count_tokens_by_piece
from leadgen_core.sandbox.profile import SandboxProfile
from leadgen_core.sandbox.web import PAGES, WebSim
from leadgen_core.vendors.openai_tiers import (
    TierLimits,
    format_duration,
    parse_duration,
    tier_limits,
    try_again_seconds,
)

REALISTIC = SandboxProfile.parse("realistic")
KEY = "sandbox-openai-key"
HOSTS = [f"normal-company-{i}.sandbox.test" for i in range(12)]


@pytest.fixture(scope="module")
def web() -> Iterator[WebSim]:
    with WebSim(seed=5, profile=REALISTIC) as server:
        assert isinstance(server, WebSim)
        yield server


def fetch(web: WebSim, host: str, path: str) -> httpx.Response:
    return httpx.get(f"{web.base_url}{path}", headers={"Host": host}, timeout=10, trust_env=False)


def test_realistic_pages_have_realistic_weight_and_text(web: WebSim) -> None:
    sizes, texts = [], []
    for host in HOSTS[:6]:
        for path in PAGES:
            page = fetch(web, host, path)
            assert page.status_code == 200
            sizes.append(len(page.content))
            texts.append(len(parse_page(page.text, f"http://{host}{path}").text))
    assert min(sizes) >= 30_000 and max(sizes) <= 400_000
    assert max(sizes) > 100_000  # a spread, not one size
    assert min(texts) >= 2_000 and max(texts) > 8_000


def test_realistic_pages_repeat_the_same_boilerplate_and_keep_the_facts(web: WebSim) -> None:
    host = HOSTS[0]
    site = web.site(host)
    pages = {path: fetch(web, host, path).text for path in PAGES}
    for text in pages.values():
        assert "We use cookies and similar technologies" in text
        assert f"Copyright 2025 {site.company}" in text
        assert text.count("<script>") >= 1
    team = parse_page(pages["/team"], f"http://{host}/team")
    assert {p.email for p in site.people} <= set(team.emails)
    assert all(p.name in team.text and p.title.replace("&", "&") in team.text for p in site.people)
    contact = parse_page(pages["/contact"], f"http://{host}/contact")
    assert f"info@{host}" in contact.emails
    # the facts are buried in the copy, not at the top of the page's text
    assert team.text.index(site.people[0].name) > 500


def test_realistic_pages_are_deterministic_per_seed_and_demo_is_unchanged(web: WebSim) -> None:
    host = HOSTS[1]
    first = fetch(web, host, "/about").content
    with WebSim(seed=5, profile=REALISTIC) as again, WebSim(seed=6, profile=REALISTIC) as other:
        assert httpx.get(f"{again.base_url}/about", headers={"Host": host}, trust_env=False).content == first
        assert httpx.get(f"{other.base_url}/about", headers={"Host": host}, trust_env=False).content != first
    with WebSim(seed=5) as demo:
        small = httpx.get(f"{demo.base_url}/about", headers={"Host": host}, trust_env=False)
        assert len(small.content) < 3_000 and "cookie" not in small.text.lower()


def test_the_filler_drawn_fast_is_the_stdlib_filler(monkeypatch: pytest.MonkeyPatch, web: WebSim) -> None:
    """The faster sentence draw gives the same sentences, and so the same pages, as `choice` and
    `randint` would (the simulator checks this itself at import, and falls back if they differ)."""
    assert web_realistic._sentence is web_realistic._sentence_drawn  # this Python draws the same way
    for seed in range(300):
        fast, slow = random.Random(seed), random.Random(seed)
        assert [web_realistic._sentence_drawn(fast) for _ in range(6)] == [
            web_realistic._sentence_stdlib(slow) for _ in range(6)
        ]
        assert fast.random() == slow.random()  # the same draws were used up
    sites = [web.site(host) for host in HOSTS]
    pages = [web_realistic.realistic_page(5, site, path) for site in sites for path in PAGES]
    monkeypatch.setattr(web_realistic, "_sentence", web_realistic._sentence_stdlib)
    assert [web_realistic.realistic_page(5, site, path) for site in sites for path in PAGES] == pages


def test_site_specs_are_made_once_and_stay_the_same(web: WebSim) -> None:
    host = HOSTS[2]
    spec = web.site(host)
    assert web.site(host.upper() + ".") is spec  # normalised, then found
    assert WebSim(seed=5).site(host) == spec  # the same seed makes the same site
    assert WebSim(seed=6).site(host) != spec


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.12, "120ms"), (1.0, "1s"), (360.0, "6m0s"), (3723.0, "1h2m3s"), (1.5, "1.5s")]
)
def test_reset_durations_round_trip(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_unreadable_values_and_tiers_are_refused_clearly() -> None:
    assert parse_duration("soon") is None and parse_duration("") is None
    assert try_again_seconds("Please try again in 360ms. Visit") == pytest.approx(0.36)
    assert tier_limits(2).tpm == 2_000_000
    with pytest.raises(ValueError, match="OPENAI_TIER must be one of 1-5"):
        tier_limits(6)


def sdk(sim: OpenAISim) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sim.base_url}/v1", api_key=KEY, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, text: str, *, max_tokens: int) -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], max_completion_tokens=max_tokens
    )


def test_tokens_per_minute_count_prompt_plus_completion_limit_with_headers() -> None:
    with OpenAISim(api_key=KEY, profile=REALISTIC, tier=1) as sim:  # 500 RPM, 200,000 TPM
        client = sdk(sim)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi."}], max_completion_tokens=150_000
        )
        h = raw.headers
        assert h["x-ratelimit-limit-tokens"] == "200000" and h["x-ratelimit-limit-requests"] == "500"
        assert h["x-ratelimit-remaining-requests"] == "499"
        remaining = int(h["x-ratelimit-remaining-tokens"])
        assert 50_000 - 20 <= remaining <= 50_000  # the unused completion limit counts too
        assert parse_duration(h["x-ratelimit-reset-tokens"]) == pytest.approx(45, abs=2)
        with pytest.raises(openai.RateLimitError) as caught:
            ask(client, "Hello again.", max_tokens=66_000)
        body = caught.value.body
        assert isinstance(body, dict) and body["code"] == "rate_limit_exceeded" and body["type"] == "tokens"
        assert "on tokens per min (TPM): Limit 200000" in body["message"]
        # 66,009 asked, ~49,992 left: ~16,017 short at 3,333 a second is a 4.8 s wait, less the refill
        # during the first answer (0.3-0.8 s) and the machine's delays; had the first request's
        # 150,000 completion tokens not been counted, this one would have passed
        wait = try_again_seconds(body["message"])
        assert wait is not None and 2.0 <= wait <= 4.85
        assert int(caught.value.response.headers["x-ratelimit-remaining-tokens"]) >= remaining
        assert sim.rate_limited == 1
        with pytest.raises(openai.RateLimitError, match="Request too large"):
            ask(client, "Hi.", max_tokens=250_000)


def test_time_scale_multiplies_the_limits() -> None:
    with OpenAISim(api_key=KEY, profile=SandboxProfile.parse("realistic", 10), tier=2) as sim:
        raw = sdk(sim).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi."}], max_completion_tokens=10
        )
        assert raw.headers["x-ratelimit-limit-tokens"] == "20000000"


def test_requests_per_minute_refuse_with_the_requests_type() -> None:
    quota = ModelQuota(TierLimits(rpm=5, tpm=1_000_000), scale=1.0)
    verdicts = [quota.admit(key="k", model="gpt-4o-mini", tokens=10) for _ in range(6)]
    assert [v.refusal is None for v in verdicts] == [True] * 5 + [False]
    refusal = verdicts[-1].refusal
    assert refusal is not None and refusal["error"]["type"] == "requests"
    assert verdicts[-1].headers["x-ratelimit-remaining-requests"] == "0"
    # another key has its own buckets
    assert quota.admit(key="other", model="gpt-4o-mini", tokens=10).refusal is None


def test_usage_is_counted_from_the_text_and_latency_follows_the_output() -> None:
    fast = SandboxProfile.parse("realistic", 2.0)
    with OpenAISim(api_key=KEY, profile=fast, tier=2) as sim:
        client = sdk(sim)
        short, long = "Acme builds robots.", "Acme builds robots for factories in Singapore. " * 200
        started = time.monotonic()
        a = ask(client, short, max_tokens=50)
        took = time.monotonic() - started
        b = ask(client, long, max_tokens=50)
        assert a.usage is not None and b.usage is not None
        assert a.usage.prompt_tokens == count_tokens(short) + 3 + 3
        assert b.usage.prompt_tokens > 40 * a.usage.prompt_tokens
        assert 0.3 / 2.0 <= took <= 2.0  # 0.3–0.8 s to the first token, halved by the time scale
        assert b.usage.completion_tokens == count_tokens(b.choices[0].message.content or "")


def test_demo_profile_sends_no_limit_headers() -> None:
    with OpenAISim(api_key=KEY, tier=1) as sim:
        raw = sdk(sim).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi."}], max_completion_tokens=10
        )
        assert "x-ratelimit-limit-tokens" not in raw.headers


# every kind of character count_tokens tells apart: letters, digits, symbols, each ASCII blank,
# the newline, and non-ASCII letters, digits and blanks (which take the piece-by-piece path)
TOKEN_ALPHABET = "abcXYZ0189 \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f.,;:!?-_@/'\"()é€٣\u00a0\u2028"


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=TOKEN_ALPHABET, max_size=80))
def test_count_tokens_equals_the_piece_by_piece_definition(text: str) -> None:
    assert count_tokens(text) == count_tokens_by_piece(text)


def test_count_tokens_on_a_long_prompt_and_edge_cases() -> None:
    page = parse_page(
        "<html><body><h1>Acme</h1><p>Founded in 1999, 120 staff. Call +65 6123 4567 or write to "
        "sales@acme.example.</p><p>" + "Reliable solutions for industry partners. " * 800 + "</p></body></html>",
        "https://acme.example/",
    ).text
    assert len(page) > 15_000 and page.isascii()
    assert count_tokens(page) == count_tokens_by_piece(page)
    assert count_tokens("") == count_tokens_by_piece("") == 1
    assert count_tokens("\n\n \n") == 1  # one blank run holding newlines
    assert count_tokens("abcdefg") == 2  # seven letters: two pieces of at most six
    assert count_tokens("1234567") == 3
