"""An OpenAI Chat Completions simulator: `POST /v1/chat/completions` with Bearer auth.

It answers the documented `chat.completion` object with `usage` (tokens approximated as
characters / 4; billable units are total tokens). Errors use OpenAI's `{"error": {message, type,
param, code}}` envelope: 401 without or with a wrong key, 400 without `model`/`messages`.

With `response_format: {"type": "json_schema", "json_schema": {name, schema, strict}}` the answer is
a JSON object valid against the schema (`$ref`/`$defs`, `anyOf`, nullable types, enums, arrays,
length and item bounds), filled from the user messages the way a model would: emails by regex,
"Name, Title" people, a description from the first sentences, an industry from keywords, an
employee count from "N employees". Like a real model it guesses: when the text shows a website
but no email, it offers `info@<that host>` (the extractor's job is to drop such inventions).
Without `response_format` the answer is a short plain-text summary of the last user message.

Under the `realistic` profile it also behaves like the real service for a usage tier (`tier`,
default `OPENAI_TIER`, else 1; limits in `vendors.openai_tiers`): RPM and TPM buckets per key and
model (`openai_quota`), counting the prompt plus `max_completion_tokens` (16,384 when unset), the
x-ratelimit-* headers on every answer and the documented 429 body when over; `usage` counted
from the actual text with a word-piece approximation of the tokenizer, the JSON schema included
in the prompt; and a latency of 0.3–0.8 s plus the output tokens at ~60 tokens/s. Limits and
latencies go through the profile's time scale.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from leadgen_core.sandbox.base import FaultConfig, SimRequest, SimResponse, SimServer, bearer_token
from leadgen_core.sandbox.openai_quota import ModelQuota
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.vendors.openai_tiers import DEFAULT_TIER, MODEL_MAX_OUTPUT_TOKENS, TierLimits, tier_limits

MAX_DEPTH = 12
MAX_LIST = 10
DEFAULT_MAX_TOKENS = 256
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
URL_RE = re.compile(r"https?://[^\s\"'<>)]+")
TITLE_WORDS = (
    r"(?:Founder|Co-Founder|CEO|CTO|COO|CFO|Chief [A-Z][a-z]+ Officer|Managing Director|Director"
    r"|Head of [A-Z][a-z]+|[A-Z][a-z]+ Manager|Partner|President)"
)
# "Jane Tan, CEO" / "Jane Tan - Founder & CEO" / "Jane Tan (Director)" / "Jane Tan is our CTO"
PERSON_RE = re.compile(
    rf"\b([A-Z][a-z]+(?: [A-Z][a-z]+){{1,2}})\s*(?:,|-|–|\(|is (?:our|the))\s*"
    rf"((?:[A-Z][a-z]+ )?{TITLE_WORDS}(?: & {TITLE_WORDS})?)"
)
# "Jane Tan Founder & CEO", as a team page's name and title read once the markup is gone; a name
# word is never a title word, so "Mei Tan Managing Director" is Mei Tan (realistic profile only)
NOT_NAMES = "Founder|Co|CEO|CTO|COO|CFO|Chief|Managing|Director|Head|Partner|President|Sales|Operations|Our|The"
NAME_WORD = rf"(?!(?:{NOT_NAMES})\b)[A-Z][a-z]+"
ADJACENT_PERSON_RE = re.compile(
    rf"\b({NAME_WORD}(?: {NAME_WORD}){{1,2}})\s+((?:[A-Z][a-z]+ )?{TITLE_WORDS}(?: & {TITLE_WORDS})?)\b"
)
EMPLOYEES_RE = re.compile(r"(\d[\d,]*)\s*\+?\s*(?:employees|staff|people)", re.I)
# in order of preference: an explicit product list beats a "specialising in" phrase
PRODUCT_CUES = ("products include", "services include", "we offer", "we provide", "specialising in", "specializing in")
INDUSTRY_KEYWORDS = (
    ("logistic", "Logistics"),
    ("freight", "Logistics"),
    ("software", "Software"),
    ("engineering", "Engineering"),
    ("food", "Food & Beverage"),
    ("interior", "Interior Design"),
    ("wholesale", "Wholesale Trade"),
    ("marketing", "Marketing"),
    ("automation", "Industrial Automation"),
    ("construction", "Construction"),
    ("retail", "Retail"),
)
CORPUS_RE = re.compile(r"<corpus>(.*?)</corpus>", re.S)
TIER_ENV = "OPENAI_TIER"
# Latency of a gpt-4o-mini chat completion: time to first token plus output at about 60 tokens/s
# (OpenAI latency optimization guide: latency is dominated by output tokens; the model page lists
# gpt-4o-mini among the fast models).
FIRST_TOKEN_S = (0.3, 0.8)
OUTPUT_TOKENS_PER_S = 60.0
MESSAGE_OVERHEAD_TOKENS = 3  # each chat message's role and separators (OpenAI cookbook, counting tokens)
REPLY_PRIMER_TOKENS = 3
# word pieces: a tokenizer splits text at word and punctuation boundaries, long words in pieces
PIECE_RE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}| ?[^\sA-Za-z\d]+|\s+")
LETTERS_PER_TOKEN = 6
# count_tokens' character classes of ASCII: symbol 0, letter 1, digit 2, blank 3 (what \s matches), newline 4
_SYMBOL, _LETTER, _DIGIT, _BLANK, _NEWLINE = range(5)
_ASCII_CLASS = np.array(
    [_NEWLINE if c == "\n" else _BLANK if re.match(r"\s", c) else _LETTER if c.isalpha() else _DIGIT if c.isdigit()
     else _SYMBOL for c in map(chr, range(128))],
    dtype=np.uint8,
)  # fmt: skip
_CHARS_PER_TOKEN = np.array([3.0, float(LETTERS_PER_TOKEN), 3.0, np.inf])  # by class; a blank run costs nothing


def _err(status: int, message: str, *, code: str | None = None, param: str | None = None) -> SimResponse:
    kind = "requests" if status == 429 else "invalid_request_error"
    return SimResponse(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def count_tokens(text: str) -> int:
    """Tokens of TEXT, approximated from its word pieces (realistic profile's `usage`).

    A piece is what PIECE_RE matches: a run of letters costs one token a LETTERS_PER_TOKEN letters,
    digits one a three, other symbols one a three (one a LETTERS_PER_TOKEN when the run starts
    with a non-ASCII letter), and a run of blanks one when it holds a newline. ASCII text (every
    prompt the product sends) is counted over character classes in arrays, ~7x faster than the
    pieces one by one (`count_tokens_by_piece`, the definition, which gives the same count:
    tests/test_realistic_web_openai.py) and a 35,000-character prompt costs the simulator ~0.5 ms."""
    if not text.isascii():
        return count_tokens_by_piece(text)
    if not text:
        return 1
    kinds = _ASCII_CLASS.take(np.frombuffer(text.encode("ascii"), dtype=np.uint8))
    runs = np.minimum(kinds, _BLANK)  # a newline is a blank as far as runs go
    starts = np.concatenate(([0], np.flatnonzero(runs[1:] != runs[:-1]) + 1))
    lengths = np.diff(starts, append=len(runs))
    tokens = int(np.ceil(lengths / _CHARS_PER_TOKEN.take(runs.take(starts))).sum())  # blank runs: 0
    newline_runs = np.unique(np.searchsorted(starts, np.flatnonzero(kinds == _NEWLINE), side="right")).size
    return max(1, tokens + newline_runs)


def count_tokens_by_piece(text: str) -> int:
    """`count_tokens` piece by piece: the definition, and the path for non-ASCII text."""
    total = 0
    for piece in PIECE_RE.findall(text):
        stripped = piece.strip()
        if not stripped:
            total += 1 if "\n" in piece else 0
        elif stripped[0].isalpha():
            total += math.ceil(len(stripped) / LETTERS_PER_TOKEN)
        else:
            total += math.ceil(len(stripped) / 3)
    return max(1, total)


def _tier_from_env() -> int:
    raw = os.environ.get(TIER_ENV, "") or str(DEFAULT_TIER)
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{TIER_ENV} must be one of 1-5, got {raw!r}") from None


def _sentences(text: str, count: int) -> str:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return " ".join(p for p in parts[:count] if p)


class Facts:
    """What a model would read out of the user text."""

    def __init__(self, text: str, *, adjacent_titles: bool = False) -> None:
        match = CORPUS_RE.search(text)
        self.text = text
        self.body = match.group(1) if match else text
        self.emails = list(dict.fromkeys(e.lower() for e in EMAIL_RE.findall(text)))
        hosts = [urlsplit(u).hostname or "" for u in URL_RE.findall(text)]
        self.hosts = [h.removeprefix("www.") for h in hosts if h]
        self.people = list(dict.fromkeys(PERSON_RE.findall(self.body)))
        if adjacent_titles:
            self.people = list(dict.fromkeys([*self.people, *ADJACENT_PERSON_RE.findall(self.body)]))
        staff = EMPLOYEES_RE.search(self.body)
        self.employees = int(staff.group(1).replace(",", "")) if staff else None
        lowered = self.body.lower()
        cue = next((c for c in PRODUCT_CUES if c in lowered), None)
        phrase = self.body[lowered.index(cue) + len(cue) :].split(".")[0] if cue else ""
        items = re.split(r",\s*|\s+and\s+", phrase) if phrase else []
        self.products = [i.strip(" .") for i in items if 2 < len(i.strip()) <= 80][:5]
        self.industry = next((label for key, label in INDUSTRY_KEYWORDS if key in lowered), "General Business")
        self.hq = "Singapore" if "singapore" in lowered else None

    def guessed_emails(self) -> list[str]:
        # the hallucination the extractor must catch: a plausible inbox at the site's host
        return self.emails or ([f"info@{self.hosts[0]}"] if self.hosts else [])


class OpenAISim(SimServer):
    """OpenAI chat completions over loopback, honouring json_schema structured outputs."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-openai-key",
        faults: FaultConfig | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        tier: int | None = None,
        limits: TierLimits | None = None,
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.api_key = api_key
        self.tier = tier if tier is not None else _tier_from_env()
        # LIMITS replaces the tier's documented numbers (tests that need a limit reached in seconds)
        self.quota = ModelQuota(limits or tier_limits(self.tier), scale=profile.time_scale)
        self.rate_limited = 0  # 429s answered for the tier's limits (realistic profile)
        self.route("POST", "/v1/chat/completions", self._complete)

    def rate_limit_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }

    def _complete(self, req: SimRequest) -> SimResponse:
        token = bearer_token(req)
        if token is None:
            return _err(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if not self.known_key(token, self.api_key):
            masked = f"{token[:3]}{'*' * max(0, len(token) - 7)}{token[-4:]}" if len(token) > 8 else "****"
            return _err(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")
        try:
            body = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _err(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict) or not body.get("model"):
            return _err(400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _err(
                400, "Missing required parameter: 'messages'.", code="missing_required_parameter", param="messages"
            )
        texts = [m.get("content") if isinstance(m, dict) else None for m in messages]
        prompt = "\n".join(t for t in texts if isinstance(t, str))
        user = "\n".join(
            m["content"]
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
        )
        fmt = body.get("response_format") or {}
        finish = "stop"
        limit_headers: dict[str, str] = {}
        # counted once a request (the admission and `usage` both need it: ~1 ms a 10k-token prompt)
        realistic_prompt = _realistic_prompt_tokens(messages, fmt) if self.profile.realistic else 0
        if self.profile.realistic:
            requested = realistic_prompt + _completion_limit(body)
            verdict = self.quota.admit(key=token, model=str(body["model"]), tokens=requested)
            limit_headers = verdict.headers
            if verdict.refusal is not None:
                with self._lock:
                    self.rate_limited += 1
                return SimResponse(429, verdict.refusal, headers=limit_headers)
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict) or not spec.get("name"):
                return _err(
                    400,
                    "Missing required parameter: 'response_format.json_schema'.",
                    code="missing_required_parameter",
                    param="response_format.json_schema",
                )
            schema = spec["schema"]
            content = json.dumps(
                _fill(schema, schema, key="", facts=Facts(user, adjacent_titles=self.profile.realistic), depth=0)
            )
        else:
            limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
            leads = _batch_leads(user)
            if leads:  # several leads, one `<ref>: <paragraph>` line each, as the prompt asks
                content = "\n".join(_lead_line(lead) for lead in leads)
            else:
                content = f"In short: {_sentences(CORPUS_RE.sub(' ', user), 2) or 'no details were given.'}"
            if _tokens(content) > int(limit):
                content, finish = content[: int(limit) * 4], "length"
        prompt_tokens, completion_tokens = _tokens(prompt), _tokens(content)
        if self.profile.realistic:
            prompt_tokens, completion_tokens = realistic_prompt, count_tokens(content)
            with self._lock:
                first_token = self._rng.uniform(*FIRST_TOKEN_S)
            time.sleep(self.profile.latency(first_token + completion_tokens / OUTPUT_TOKENS_PER_S))
        digest = hashlib.sha256(req.body).hexdigest()[:24]
        payload = {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "service_tier": "default",
            "system_fingerprint": "fp_sandbox",
        }
        return SimResponse(200, payload, headers=limit_headers, billable_units=prompt_tokens + completion_tokens)


def charged_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion limit) one request counts against TPM under the realistic profile."""
    messages = body.get("messages")
    fmt = body.get("response_format")
    return (
        _realistic_prompt_tokens(messages if isinstance(messages, list) else [], fmt if isinstance(fmt, dict) else {}),
        _completion_limit(body),
    )


def _completion_limit(body: dict[str, Any]) -> int:
    """What a request's completion counts against TPM: its limit, else the model's max output."""
    raw = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(raw) if isinstance(raw, int) and raw > 0 else MODEL_MAX_OUTPUT_TOKENS


def _realistic_prompt_tokens(messages: list[Any], fmt: dict[str, Any]) -> int:
    """Prompt tokens as the service counts them: every message, its framing, and the JSON schema."""
    total = REPLY_PRIMER_TOKENS
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        total += MESSAGE_OVERHEAD_TOKENS + (count_tokens(content) if isinstance(content, str) else 0)
    if fmt.get("type") == "json_schema":
        total += count_tokens(json.dumps(fmt.get("json_schema") or {}))
    return total


def _batch_leads(user: str) -> list[dict[str, Any]]:
    """The leads of a batched rationale prompt (a JSON object with a `leads` list), else []."""
    start = user.find("{")
    if start < 0:
        return []
    try:
        data = json.loads(user[start:])
    except json.JSONDecodeError:
        return []
    leads = data.get("leads") if isinstance(data, dict) else None
    if not isinstance(leads, list):
        return []
    return [lead for lead in leads if isinstance(lead, dict) and isinstance(lead.get("ref"), str)]


def _lead_line(lead: dict[str, Any]) -> str:
    """One lead's answer, from its own features only, in the form the system prompt asks for (the
    template's): `<company>: <bucket> (<score>). <two largest contributions>; weakest: <feature>.`"""
    raw = lead.get("features")
    features: dict[str, Any] = raw if isinstance(raw, dict) else {}
    described = sorted(
        (
            (float(f.get("contribution") or 0.0), float(f.get("value") or 0.0), str(f.get("in_words") or name))
            for name, f in features.items()
            if isinstance(f, dict)
        ),
        reverse=True,
    )
    strong = ", ".join(f"{words} ({value:.2f})" for contribution, value, words in described[:2] if contribution > 0)
    body = (strong[:1].upper() + strong[1:]) if strong else "No positive signals"
    weakest = min(described, key=lambda d: d[1], default=None)
    tail = f"; weakest: {weakest[2]} ({weakest[1]:.2f})." if weakest else "."
    score = float(lead.get("score") or 0.0)
    return f"{lead['ref']}: {lead.get('company')}: {lead.get('bucket')} ({score:.2f}). {body}{tail}"


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    for _ in range(MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node if isinstance(node, dict) else {}
    return schema


def _string(key: str, facts: Facts, person: tuple[str, str] | None) -> str:
    k = key.lower()
    if person and k in {"name", "full_name", "fullname"}:
        return person[0]
    if person and k in {"title", "role", "position", "job_title"}:
        return person[1]
    if "email" in k:
        emails = facts.guessed_emails()
        return emails[0] if emails else ""
    if k in {"description", "summary", "about", "overview"}:
        return _sentences(URL_RE.sub(" ", facts.body).replace("URL:", " "), 2)
    if "industry" in k or "sector" in k:
        return facts.industry
    if k in {"hq", "headquarters", "location", "country", "city", "address"}:
        return facts.hq or ""
    if "url" in k or "website" in k:
        return f"http://{facts.hosts[0]}/" if facts.hosts else ""
    return " ".join(facts.body.split()[:8])


def _fill(
    schema: dict[str, Any],
    root: dict[str, Any],
    *,
    key: str,
    facts: Facts,
    depth: int,
    person: tuple[str, str] | None = None,
) -> Any:
    schema = _resolve(schema, root)
    if depth > MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        concrete = [o for o in options if isinstance(o, dict) and _resolve(o, root).get("type") != "null"]
        nullable = len(concrete) < len(options)
        for option in concrete:
            value = _fill(option, root, key=key, facts=facts, depth=depth + 1, person=person)
            if value not in (None, "", []) or not nullable:
                return value
        return None
    kind = schema.get("type")
    if isinstance(kind, list):
        concrete_kinds = [t for t in kind if t != "null"]
        value = (
            _fill({**schema, "type": concrete_kinds[0]}, root, key=key, facts=facts, depth=depth + 1, person=person)
            if concrete_kinds
            else None
        )
        return None if "null" in kind and value in ("", []) else value
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {
            name: _fill(sub, root, key=name, facts=facts, depth=depth + 1, person=person)
            for name, sub in props.items()
            if isinstance(sub, dict)
        }
    if kind == "array":
        return _array(schema, root, key=key, facts=facts, depth=depth)
    if kind == "string":
        text = _string(key, facts, person)
        limit = schema.get("maxLength")
        text = text[:limit] if isinstance(limit, int) else text
        return text.ljust(schema["minLength"], ".") if isinstance(schema.get("minLength"), int) else text
    if kind in {"integer", "number"}:
        value = facts.employees if any(w in key.lower() for w in ("employee", "staff", "headcount", "size")) else None
        if value is None:
            value = schema.get("minimum", 0)
        value = min(value, schema.get("maximum", value))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def _array(schema: dict[str, Any], root: dict[str, Any], *, key: str, facts: Facts, depth: int) -> list[Any]:
    items = _resolve(schema.get("items") or {}, root)
    k = key.lower()
    values: list[Any]
    if "email" in k:
        values = list(facts.guessed_emails())
    elif any(w in k for w in ("people", "person", "contact", "team", "staff", "executive", "leader")):
        values = [_fill(items, root, key="", facts=facts, depth=depth + 1, person=p) for p in facts.people]
    elif "product" in k or "service" in k:
        values = list(facts.products)
    else:
        values = [_fill(items, root, key=key, facts=facts, depth=depth + 1)]
    low, high = schema.get("minItems", 0), schema.get("maxItems", MAX_LIST)
    while len(values) < low:
        values.append(_fill(items, root, key=key, facts=facts, depth=depth + 1))
    return values[: min(high, MAX_LIST)]
