"""The four vendor simulators, spoken to directly over HTTP.

Real: loopback HTTP servers (`SimServer` threads) and a real httpx client over real sockets; the
request bodies, headers and answers are the documented shapes of Tavily, Lusha V3, ZeroBounce v2
and OpenAI chat completions. Simulated: the vendors themselves - their data (companies, people,
mailbox states, model output) is derived deterministically from the request content.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from leadgen_core.sandbox.base import FaultConfig, SimServer
from leadgen_core.sandbox.lusha import LushaSim, people_at
from leadgen_core.sandbox.naming import company_slug, sandbox_domain, stable_fraction
from leadgen_core.sandbox.openai_sim import OpenAISim
from leadgen_core.sandbox.tavily import TavilySim
from leadgen_core.sandbox.zerobounce import ZeroBounceSim, classify

WEB_PORT = 18080
TAVILY_KEY, LUSHA_KEY, ZB_KEY = "sandbox-tavily-key", "sandbox-lusha-key", "sandbox-zerobounce-key"
OPENAI_KEY = "sk-sandbox-openai-key"
S = TypeVar("S", bound=SimServer)


def running(sim: S) -> Iterator[S]:
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


# one server per vendor for the module (stopping a server costs up to its 0.5 s poll interval);
# each test gets it with an empty request log and a known balance
@pytest.fixture(scope="module")
def shared_tavily() -> Iterator[TavilySim]:
    yield from running(TavilySim(web_port=WEB_PORT))


@pytest.fixture(scope="module")
def shared_lusha() -> Iterator[LushaSim]:
    yield from running(LushaSim())


@pytest.fixture(scope="module")
def shared_zerobounce() -> Iterator[ZeroBounceSim]:
    yield from running(ZeroBounceSim())


@pytest.fixture(scope="module")
def shared_openai() -> Iterator[OpenAISim]:
    yield from running(OpenAISim(api_key=OPENAI_KEY))


@pytest.fixture
def tavily(shared_tavily: TavilySim) -> TavilySim:
    shared_tavily.reset_log()
    return shared_tavily


@pytest.fixture
def lusha(shared_lusha: LushaSim) -> LushaSim:
    shared_lusha.reset_log()
    shared_lusha.credits = 50
    return shared_lusha


@pytest.fixture
def zerobounce(shared_zerobounce: ZeroBounceSim) -> ZeroBounceSim:
    shared_zerobounce.reset_log()
    shared_zerobounce.credits = 1_000
    return shared_zerobounce


@pytest.fixture
def openai_sim(shared_openai: OpenAISim) -> OpenAISim:
    shared_openai.reset_log()
    return shared_openai


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def names_where(predicate: Any, count: int) -> list[str]:
    """Company names whose `stable_fraction` satisfies the predicate (so tests never hard-code luck)."""
    found = [f"Test Company {i} Pte. Ltd." for i in range(2000)]
    return [n for n in found if predicate(stable_fraction("tavily-hit", company_slug(n)))][:count]


# --- Tavily -----------------------------------------------------------------------------------
def test_tavily_rejects_missing_and_wrong_bearer_with_documented_body(tavily: TavilySim, http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TAVILY_KEY}):
        r = http.post(f"{tavily.base_url}/search", json={"query": "x"}, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"detail": {"error": "Unauthorized: missing or invalid API key."}}
    assert tavily.billable_units == 0


def test_tavily_search_validates_fields(tavily: TavilySim, http: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TAVILY_KEY}"}
    assert (
        http.post(f"{tavily.base_url}/search", json={}, headers=auth).json()["detail"]["error"] == "Query is missing."
    )
    too_long = http.post(f"{tavily.base_url}/search", json={"query": "q" * 401}, headers=auth)
    assert too_long.status_code == 400
    assert "400 characters" in too_long.json()["detail"]["error"]
    bad_max = http.post(f"{tavily.base_url}/search", json={"query": "q", "max_results": 21}, headers=auth)
    assert bad_max.status_code == 400


def test_tavily_search_finds_company_site_for_most_names_and_bills_by_depth(
    tavily: TavilySim, http: httpx.Client
) -> None:
    auth = {"Authorization": f"Bearer {TAVILY_KEY}"}
    hit = names_where(lambda f: f < 0.85, 1)[0]
    miss = names_where(lambda f: f >= 0.85, 1)[0]
    body = {"query": f"{hit} Singapore official website", "max_results": 3, "include_raw_content": True}
    r = http.post(f"{tavily.base_url}/search", json=body | {"include_usage": True}, headers=auth).json()
    assert r["query"] == body["query"]
    assert len(r["results"]) == 3
    assert r["results"][0]["url"] == f"http://{sandbox_domain(hit)}:{WEB_PORT}/"
    assert {"url", "title", "content", "score", "raw_content"} <= set(r["results"][0])
    assert hit in r["results"][0]["raw_content"]
    assert r["usage"] == {"credits": 1}
    advanced = http.post(f"{tavily.base_url}/search", json=body | {"search_depth": "advanced"}, headers=auth).json()
    assert "usage" not in advanced  # only reported when include_usage is set
    assert advanced["results"] == r["results"]  # deterministic
    missed = http.post(f"{tavily.base_url}/search", json={"query": f"{miss} official website"}, headers=auth).json()
    assert missed["results"]
    assert all(".sandbox.test" not in x["url"] for x in missed["results"])
    assert all(x["raw_content"] is None for x in missed["results"])
    assert tavily.billable_units == 1 + 2 + 1


def test_tavily_hit_rate_is_about_85_percent() -> None:
    names = [f"Hit Rate Probe {i} Pte Ltd" for i in range(400)]
    hits = sum(stable_fraction("tavily-hit", company_slug(n)) < 0.85 for n in names)
    assert 0.78 < hits / len(names) < 0.92


def test_tavily_extract_charges_per_five_successes(tavily: TavilySim, http: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TAVILY_KEY}"}
    urls = [f"http://site-{i}.sandbox.test:{WEB_PORT}/" for i in range(6)] + ["https://nowhere.example/"]
    r = http.post(f"{tavily.base_url}/extract", json={"urls": urls, "include_usage": True}, headers=auth).json()
    assert [x["url"] for x in r["results"]] == urls[:6]
    assert all(x["raw_content"] for x in r["results"])
    assert r["failed_results"] == [{"url": "https://nowhere.example/", "error": "Failed to fetch url"}]
    assert r["usage"] == {"credits": 2}
    assert tavily.billable_units == 2
    many = http.post(f"{tavily.base_url}/extract", json={"urls": urls * 3}, headers=auth)
    assert many.status_code == 400
    assert "20 URLs" in many.json()["detail"]["error"]


def test_tavily_rate_limit_uses_vendor_shape(http: httpx.Client) -> None:
    with TavilySim(faults=FaultConfig(rate_limit_per_s=1, retry_after_s=2)) as sim:
        auth = {"Authorization": f"Bearer {TAVILY_KEY}"}
        assert http.post(f"{sim.base_url}/search", json={"query": "a"}, headers=auth).status_code == 200
        r = http.post(f"{sim.base_url}/search", json={"query": "a"}, headers=auth)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert "error" in r.json()["detail"]


# --- Lusha ------------------------------------------------------------------------------------
def test_lusha_rate_limit_uses_vendor_shape(http: httpx.Client) -> None:
    body = {"contacts": [{"clientReferenceId": "r", "email": "a@b.sandbox.test"}]}
    with LushaSim(api_key=LUSHA_KEY, faults=FaultConfig(rate_limit_per_s=1, retry_after_s=3)) as sim:
        url, h = f"{sim.base_url}/v3/contacts/search-and-enrich", {"api_key": LUSHA_KEY}
        assert http.post(url, json=body, headers=h).status_code == 200
        r = http.post(url, json=body, headers=h)
    assert (r.status_code, r.headers["retry-after"]) == (429, "3")
    assert r.json() == {"statusCode": 429, "message": "Too many requests. Please wait before making another request."}


def test_lusha_auth_is_the_api_key_header(lusha: LushaSim, http: httpx.Client) -> None:
    body = {"contacts": [{"clientReferenceId": "r", "email": "a@b.sandbox.test"}]}
    for headers in ({}, {"Authorization": f"Bearer {LUSHA_KEY}"}, {"api_key": "wrong"}):
        r = http.post(f"{lusha.base_url}/v3/contacts/search-and-enrich", json=body, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"statusCode": 401, "message": "Invalid API key"}


def test_lusha_validates_bodies(lusha: LushaSim, http: httpx.Client) -> None:
    h = {"api_key": LUSHA_KEY}
    empty = http.post(f"{lusha.base_url}/v3/contacts/search-and-enrich", json={"contacts": []}, headers=h)
    assert empty.status_code == 400
    assert empty.json()["message"] == "Invalid request parameters"
    no_id = http.post(
        f"{lusha.base_url}/v3/contacts/search-and-enrich", json={"contacts": [{"firstName": "A"}]}, headers=h
    )
    assert no_id.status_code == 400
    assert no_id.json()["errors"] == ["contacts[0] has no identifier"]
    no_filters = http.post(
        f"{lusha.base_url}/v3/contacts/prospecting", json={"pagination": {"page": 0, "size": 10}}, headers=h
    )
    assert no_filters.status_code == 400


def _domain_with_people(min_people: int = 1) -> str:
    return next(d for d in (f"probe{i}.sandbox.test" for i in range(500)) if len(people_at(d)) >= min_people)


def test_lusha_search_and_enrich_bills_hits_only(lusha: LushaSim, http: httpx.Client) -> None:
    domain = _domain_with_people()
    person = people_at(domain)[0]
    miss_domain = next(d for d in (f"ghost{i}.sandbox.test" for i in range(500)) if not people_at(d))
    miss_item = {"clientReferenceId": "miss", "firstName": "No", "lastName": "Body", "companyDomain": miss_domain}
    body = {
        "contacts": [
            {"clientReferenceId": "hit", "firstName": person.first, "lastName": person.last, "companyDomain": domain},
            miss_item,
        ],
        "reveal": ["emails"],
    }
    r = http.post(f"{lusha.base_url}/v3/contacts/search-and-enrich", json=body, headers={"api_key": LUSHA_KEY}).json()
    hit, miss = r["results"]
    assert hit["clientReferenceId"] == "hit"
    assert hit["fullName"] == person.full_name
    assert hit["jobTitle"]["title"] == person.title
    assert hit["phones"] == []
    assert miss == {"clientReferenceId": "miss", "error": {"code": "NOT_FOUND", "message": "Contact not found"}}
    expected = 1 + (1 if person.email else 0)
    assert [e["email"] for e in hit["emails"]] == ([person.email] if person.email else [])
    assert r["billing"] == {"creditsCharged": expected, "resultsReturned": 1}
    assert lusha.billable_units == expected
    assert lusha.credits == 50 - expected
    only_miss = {"contacts": [miss_item], "reveal": ["emails"]}
    r2 = http.post(f"{lusha.base_url}/v3/contacts/search-and-enrich", json=only_miss, headers={"api_key": LUSHA_KEY})
    assert r2.json()["billing"]["creditsCharged"] == 0


def test_lusha_prospecting_filters_by_title_and_returns_402_when_broke(lusha: LushaSim, http: httpx.Client) -> None:
    domain = _domain_with_people(2)
    lead = people_at(domain)[0]
    body = {
        "pagination": {"page": 0, "size": 10},
        "filters": {
            "companies": {"include": {"domains": [domain]}},
            "contacts": {"include": {"jobTitles": [lead.title]}},
        },
    }
    lusha.credits = 0
    r = http.post(f"{lusha.base_url}/v3/contacts/prospecting", json=body, headers={"api_key": LUSHA_KEY})
    assert r.status_code == 402
    assert r.json() == {"statusCode": 402, "message": "Insufficient credits for this operation"}
    lusha.credits = 10
    ok = http.post(f"{lusha.base_url}/v3/contacts/prospecting", json=body, headers={"api_key": LUSHA_KEY}).json()
    titles = {x["jobTitle"]["title"] for x in ok["results"]}
    assert lead.id in {x["id"] for x in ok["results"]}
    assert all(set(lead.title.lower().split()) <= set(t.lower().split()) for t in titles)
    assert ok["billing"]["creditsCharged"] == len(ok["results"])


# --- ZeroBounce -------------------------------------------------------------------------------
def test_zerobounce_key_errors_are_documented_200s(zerobounce: ZeroBounceSim, http: httpx.Client) -> None:
    base = zerobounce.base_url
    assert http.get(f"{base}/v2/validate", params={"email": "a@b.com"}).status_code == 400
    wrong = http.get(f"{base}/v2/validate", params={"api_key": "nope", "email": "a@b.com", "ip_address": ""})
    assert wrong.status_code == 200
    assert wrong.json() == {"error": "Invalid API key or your account ran out of credits"}
    assert http.get(f"{base}/v2/validate", params={"api_key": ZB_KEY}).status_code == 400
    no_ip = http.get(f"{base}/v2/validate", params={"api_key": ZB_KEY, "email": "a@b.com"})
    assert (no_ip.status_code, no_ip.json()) == (400, {"error": "Missing parameter: ip_address"})
    assert http.get(f"{base}/v2/getcredits", params={"api_key": "nope"}).json() == {"Credits": "-1"}
    batch = http.post(
        f"{base}/v2/validatebatch", json={"api_key": "nope", "email_batch": [{"email_address": "a@b.com"}]}
    )
    assert batch.json()["errors"] == [
        {"error": "Invalid API Key or your account ran out of credits", "email_address": "all"}
    ]
    assert zerobounce.billable_units == 0


def test_zerobounce_statuses_and_billing(zerobounce: ZeroBounceSim, http: httpx.Client) -> None:
    base = zerobounce.base_url
    cases = {
        "valid@example.com": ("valid", ""),
        "unknown@example.com": ("unknown", "mail_server_temporary_error"),
        "catch_all@example.com": ("catch-all", ""),
        "spamtrap@example.com": ("spamtrap", ""),
        "info@acme.sandbox.test": ("do_not_mail", "role_based"),
        "jo@mailinator.com": ("do_not_mail", "disposable"),
        "not-an-email": ("invalid", "failed_syntax_check"),
    }
    batch = [{"email_address": e, "ip_address": None} for e in cases]
    r = http.post(f"{base}/v2/validatebatch", json={"api_key": ZB_KEY, "email_batch": batch}).json()
    assert {x["address"]: (x["status"], x["sub_status"]) for x in r["email_batch"]} == cases
    assert r["errors"] == []
    assert zerobounce.billable_units == len(cases) - 1  # unknown is free
    assert http.get(f"{base}/v2/getcredits", params={"api_key": ZB_KEY}).json() == {"Credits": str(1000 - 6)}
    typo = http.get(f"{base}/v2/validate", params={"api_key": ZB_KEY, "email": "jo@gmial.com", "ip_address": ""}).json()
    assert (typo["status"], typo["sub_status"], typo["did_you_mean"]) == ("invalid", "possible_typo", "jo@gmail.com")
    too_many = [{"email_address": f"a{i}@b.com"} for i in range(201)]
    assert http.post(f"{base}/v2/validatebatch", json={"api_key": ZB_KEY, "email_batch": too_many}).status_code == 400


def test_zerobounce_domains_vary_deterministically() -> None:
    statuses = [classify(f"jane.doe@company{i}.sandbox.test")[0] for i in range(300)]
    assert statuses == [classify(f"jane.doe@company{i}.sandbox.test")[0] for i in range(300)]
    assert {"valid", "catch-all", "unknown", "invalid"} <= set(statuses)
    assert statuses.count("valid") > len(statuses) / 2


# --- OpenAI -----------------------------------------------------------------------------------
def test_openai_auth_errors(openai_sim: OpenAISim, http: httpx.Client) -> None:
    url = f"{openai_sim.base_url}/v1/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    missing = http.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    wrong = http.post(url, json=body, headers={"Authorization": "Bearer sk-wrong-key-123456"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-123456" not in wrong.text
    no_messages = http.post(url, json={"model": "m"}, headers={"Authorization": f"Bearer {OPENAI_KEY}"})
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["param"] == "messages"


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["company", "contacts", "size", "kind", "emails", "tags"],
    "properties": {
        "company": {"$ref": "#/$defs/Company"},
        "contacts": {"type": "array", "items": {"$ref": "#/$defs/Contact"}},
        "size": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 500}, {"type": "null"}]},
        "kind": {"type": "string", "enum": ["b2b", "b2c"]},
        "emails": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 2},
    },
    "$defs": {
        "Company": {
            "type": "object",
            "additionalProperties": False,
            "required": ["description", "industry", "website"],
            "properties": {
                "description": {"type": "string"},
                "industry": {"type": ["string", "null"]},
                "website": {"type": "string"},
            },
        },
        "Contact": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "title"],
            "properties": {"name": {"type": "string"}, "title": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        },
    },
}


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """A small JSON Schema checker for the keywords the simulator claims to honour."""
    if "$ref" in schema:
        return conforms(value, root["$defs"][schema["$ref"].split("/")[-1]], root)
    if "anyOf" in schema:
        return any(conforms(value, option, root) for option in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str) and len(v) <= schema.get("maxLength", 10**9),
        "integer": lambda v: (
            isinstance(v, int) and schema.get("minimum", -(10**9)) <= v <= schema.get("maximum", 10**9)
        ),
        "null": lambda v: v is None,
    }
    if not any(checks[k](value) for k in kinds if k in checks):
        return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return set(value) == set(schema.get("required", [])) and all(conforms(value[k], props[k], root) for k in value)
    if isinstance(value, list):
        return len(value) >= schema.get("minItems", 0) and all(conforms(v, schema["items"], root) for v in value)
    return True


def test_openai_structured_output_validates_against_schema(openai_sim: OpenAISim, http: httpx.Client) -> None:
    text = (
        "Visit http://acme.sandbox.test/ - Acme builds freight software for 120 employees. "
        "Jane Tan, Founder & CEO. Write to jane@acme.sandbox.test."
    )
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "extract"}, {"role": "user", "content": text}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "Probe", "schema": SCHEMA, "strict": True}},
    }
    r = http.post(
        f"{openai_sim.base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {OPENAI_KEY}"}
    )
    completion = r.json()
    assert completion["object"] == "chat.completion"
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    answer = json.loads(choice["message"]["content"])
    assert conforms(answer, SCHEMA, SCHEMA)
    assert answer["emails"] == ["jane@acme.sandbox.test"]
    assert answer["contacts"] == [{"name": "Jane Tan", "title": "Founder & CEO"}]
    assert answer["size"] == 120
    assert answer["company"]["industry"] == "Logistics"
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] == -(-len("extract\n" + text) // 4)
    assert openai_sim.billable_units == usage["total_tokens"]


def test_openai_plain_text_honours_max_tokens(openai_sim: OpenAISim, http: httpx.Client) -> None:
    url = f"{openai_sim.base_url}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {OPENAI_KEY}"}
    msg = [{"role": "user", "content": "Acme fits because it ships robots. It is based in Singapore. More text."}]
    full = http.post(url, json={"model": "m", "messages": msg}, headers=auth).json()["choices"][0]
    assert full["finish_reason"] == "stop"
    assert "ships robots" in full["message"]["content"]
    short = http.post(url, json={"model": "m", "messages": msg, "max_tokens": 3}, headers=auth).json()["choices"][0]
    assert short["finish_reason"] == "length"
    assert len(short["message"]["content"]) <= 12


def test_a_burst_of_new_connections_all_complete_their_handshake() -> None:
    """Sixty clients connecting at once (ten run workers opening their pools) are all queued by the
    kernel, even before the server accepts one: the listen backlog is the simulator's 256, not the
    stdlib's 5, with which the handshakes past the sixth were dropped and clients saw connection
    errors."""
    import socket
    from http.server import BaseHTTPRequestHandler

    from leadgen_core.sandbox.base import _QuietServer

    server = _QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)  # listening, never accepting
    sockets: list[socket.socket] = []
    try:
        for _ in range(60):
            sock = socket.socket()
            sock.settimeout(0.5)
            sockets.append(sock)
            sock.connect(server.server_address)  # a dropped handshake times out here
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()
    assert len(sockets) == 60
