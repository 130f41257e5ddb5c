"""Wire-level tests of the Odoo simulator (OdooSim), without the leadgen clients.

Real: HTTP over loopback sockets, the JSON-RPC and JSON-2 request and error formats as Odoo's
documentation and source describe them (status codes, `error` objects, `{name, message,
arguments, context, debug}` bodies), and concurrency against the threaded server.
Simulated: Odoo itself. The models, domains and faults are OdooSim's in-memory stand-ins, so a
pass here says the simulator speaks the protocols, not that a real Odoo behaves identically.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from leadgen_core.sandbox.odoo import REALISTIC_CALL_S, OdooSim
from leadgen_core.sandbox.profile import SandboxProfile

DB = "leadgen"
LOGIN = "bot@leadgen.test"
SECRET = "s3cr3t-odoo-key-4f9a"


# one server and one HTTP client per module: each stop() waits out the server's 0.5 s poll,
# and each new httpx client builds an SSL context; reset() gives every test an empty database
_HTTP = httpx.Client(timeout=5.0)


@pytest.fixture(scope="module")
def server() -> Iterator[OdooSim]:
    odoo = OdooSim(db=DB, users={LOGIN: SECRET})
    odoo.start()
    yield odoo
    odoo.stop()


@pytest.fixture
def sim(server: OdooSim) -> OdooSim:
    server.reset()
    return server


def rpc(sim: OdooSim, service: str, method: str, args: list[Any], *, rid: int = 1) -> httpx.Response:
    payload = {"jsonrpc": "2.0", "method": "call", "params": {"service": service, "method": method, "args": args}}
    return _HTTP.post(f"{sim.base_url}/jsonrpc", json={**payload, "id": rid})


def execute(
    sim: OdooSim, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None, *, pw: str = SECRET
) -> Any:
    response = rpc(sim, "object", "execute_kw", [DB, sim.uid_of(LOGIN), pw, model, method, args, kwargs or {}])
    assert response.status_code == 200  # JSON-RPC reports every application error inside a 200
    return response.json()


def j2(sim: OdooSim, model: str, method: str, body: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
    sent = {"Authorization": f"bearer {SECRET}"} if headers is None else headers
    return _HTTP.post(f"{sim.base_url}/json/2/{model}/{method}", json=body, headers=sent)


def rpc_error(body: dict[str, Any]) -> dict[str, Any]:
    """The error object with the (free-form) traceback removed, after checking it is one."""
    assert set(body) == {"jsonrpc", "id", "error"}
    error = body["error"]
    assert isinstance(error["data"].pop("debug"), str)
    return dict(error)


def j2_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"name", "message", "arguments", "context", "debug"}
    assert body.pop("debug").startswith("Traceback")
    return dict(body)


def odoo_error(name: str, message: str) -> dict[str, Any]:
    data = {"name": name, "message": message, "arguments": [message], "context": {}}
    return {"code": 200, "message": "Odoo Server Error", "data": data}


def test_version_needs_no_credentials(sim: OdooSim) -> None:
    result = rpc(sim, "common", "version", []).json()["result"]
    assert result["server_version"] == "19.0"
    assert result["protocol_version"] == 1


def test_jsonrpc_authenticate_returns_uid_or_false(sim: OdooSim) -> None:
    ok = rpc(sim, "common", "authenticate", [DB, LOGIN, SECRET, {}], rid=7)
    assert ok.json() == {"jsonrpc": "2.0", "id": 7, "result": 2}
    for login, password in [(LOGIN, "wrong"), ("nobody@x.test", SECRET)]:
        denied = rpc(sim, "common", "authenticate", [DB, login, password, {}], rid=8)
        assert denied.status_code == 200
        assert denied.json() == {"jsonrpc": "2.0", "id": 8, "result": False}


def test_jsonrpc_bad_password_on_execute_kw_is_access_denied(sim: OdooSim) -> None:
    body = execute(sim, "res.partner", "search", [[]], pw="wrong")
    assert rpc_error(body) == odoo_error("odoo.exceptions.AccessDenied", "Access Denied")
    assert body["id"] == 1


def test_jsonrpc_unknown_database(sim: OdooSim) -> None:
    body = rpc(sim, "common", "authenticate", ["nope", LOGIN, SECRET, {}]).json()
    message = 'connection failed: FATAL:  database "nope" does not exist'
    assert rpc_error(body) == odoo_error("psycopg2.OperationalError", message)


@pytest.mark.parametrize("headers", [{"Authorization": "bearer wrong"}, {}, {"Authorization": f"Basic {SECRET}"}])
def test_json2_bad_key_is_401_unauthorized(sim: OdooSim, headers: dict[str, str]) -> None:
    response = j2(sim, "res.partner", "search", {"domain": []}, headers=headers)
    assert response.status_code == 401
    assert j2_error(response) == {
        "name": "werkzeug.exceptions.Unauthorized",
        "message": "Invalid apikey",
        "arguments": ["Invalid apikey", 401],
        "context": {},
    }


def test_json2_database_header(sim: OdooSim) -> None:
    auth = {"Authorization": f"bearer {SECRET}"}
    assert j2(sim, "res.partner", "search", {"domain": []}, headers=auth).json() == []
    assert j2(sim, "res.partner", "search", {"domain": []}, headers={**auth, "X-Odoo-Database": DB}).json() == []
    wrong = j2(sim, "res.partner", "search", {"domain": []}, headers={**auth, "X-Odoo-Database": "other"})
    assert wrong.status_code == 404
    assert j2_error(wrong)["name"] == "werkzeug.exceptions.NotFound"


def test_unknown_model_error_shapes(sim: OdooSim) -> None:
    assert rpc_error(execute(sim, "x.nope", "search", [[]])) == odoo_error(
        "odoo.exceptions.UserError", "Object x.nope doesn't exist"
    )
    response = j2(sim, "x.nope", "search", {"domain": []})
    assert response.status_code == 404
    message = "the model 'x.nope' does not exist"
    assert j2_error(response) == {
        "name": "werkzeug.exceptions.NotFound",
        "message": message,
        "arguments": [message, 404],
        "context": {},
    }


def test_unknown_and_private_method_error_shapes(sim: OdooSim) -> None:
    missing = "The method 'frobnicate' does not exist on the model 'res.partner'"
    assert rpc_error(execute(sim, "res.partner", "frobnicate", [])) == odoo_error("builtins.AttributeError", missing)
    response = j2(sim, "res.partner", "frobnicate", {})
    assert (response.status_code, j2_error(response)["name"]) == (404, "werkzeug.exceptions.NotFound")
    private = "Private methods (such as res.partner._compute_x) cannot be called remotely."
    denied = rpc_error(execute(sim, "res.partner", "_compute_x", []))
    assert denied == odoo_error("odoo.exceptions.AccessError", private)
    response = j2(sim, "res.partner", "_compute_x", {})
    assert response.status_code == 403
    assert j2_error(response) == {
        "name": "odoo.exceptions.AccessError",
        "message": private,
        "arguments": [private],
        "context": {},
    }


def test_unknown_field_is_a_value_error(sim: OdooSim) -> None:
    message = "Invalid field 'x_nope' on model 'res.partner'"
    assert rpc_error(execute(sim, "res.partner", "create", [{"name": "A", "x_nope": 1}])) == odoo_error(
        "builtins.ValueError", message
    )
    assert rpc_error(execute(sim, "res.partner", "search_read", [[]], {"fields": ["x_nope"]})) == odoo_error(
        "builtins.ValueError", message
    )
    response = j2(sim, "res.partner", "search", {"domain": [["x_nope", "=", 1]]})
    assert response.status_code == 500  # Odoo 19 answers an uncaught ValueError with a 500
    assert j2_error(response)["name"] == "builtins.ValueError"
    assert sim.counts()["res.partner"] == 0


def test_bad_arguments_are_type_errors(sim: OdooSim) -> None:
    message = "search() got an unexpected keyword argument 'bogus'"
    assert rpc_error(execute(sim, "res.partner", "search", [[]], {"bogus": 1})) == odoo_error(
        "builtins.TypeError", message
    )
    response = j2(sim, "res.partner", "search", {"domain": [], "bogus": 1})
    assert response.status_code == 422
    assert j2_error(response) == {
        "name": "werkzeug.exceptions.UnprocessableEntity",
        "message": message,
        "arguments": [message, 422],
        "context": {},
    }
    with_ids = j2(sim, "res.partner", "search", {"ids": [1], "domain": []})
    assert with_ids.status_code == 422
    assert j2_error(with_ids)["message"] == "cannot call res.partner.search with ids"


def test_create_forms_and_auto_ids(sim: OdooSim) -> None:
    assert execute(sim, "crm.tag", "create", [{"name": "a"}])["result"] == 1
    assert execute(sim, "crm.tag", "create", [[{"name": "b"}, {"name": "c"}]])["result"] == [2, 3]
    assert j2(sim, "crm.tag", "create", {"vals_list": [{"name": "d"}]}).json() == [4]
    assert j2(sim, "crm.tag", "create", {"vals_list": {"name": "e"}}).json() == [5]
    assert [r["name"] for r in sim.records("crm.tag")] == ["a", "b", "c", "d", "e"]
    missing_name = j2(sim, "crm.lead", "create", {"vals_list": [{"probability": 10}]})
    assert (missing_name.status_code, j2_error(missing_name)["name"]) == (422, "odoo.exceptions.ValidationError")


def test_read_presents_values_like_odoo(sim: OdooSim) -> None:
    company = execute(sim, "res.partner", "create", [{"name": "Acme", "is_company": True, "website": "acme.sg"}])
    tag = execute(sim, "crm.tag", "create", [{"name": "hot"}])["result"]
    person = {"name": "Bob", "parent_id": company["result"], "comment": "a < b\nc"}
    contact = execute(sim, "res.partner", "create", [person])["result"]
    fields = ["name", "parent_id", "website", "comment", "email", "display_name"]
    rows = j2(sim, "res.partner", "read", {"ids": [contact, 1], "fields": fields}).json()
    assert rows == [
        {
            "id": 2,
            "name": "Bob",
            "parent_id": [1, "Acme"],
            "website": False,
            "comment": "<p>a &lt; b<br>c</p>",
            "email": False,
            "display_name": "Acme, Bob",
        },
        {
            "id": 1,
            "name": "Acme",
            "parent_id": False,
            "website": "http://acme.sg",
            "comment": False,
            "email": False,
            "display_name": "Acme",
        },
    ]
    lead = execute(sim, "crm.lead", "create", [{"name": "L", "tag_ids": [[6, 0, [tag]]], "x_leadgen_key": "k"}])
    read = execute(sim, "crm.lead", "read", [[lead["result"]], ["tag_ids", "type", "x_leadgen_key", "probability"]])
    assert read["result"] == [{"id": 1, "tag_ids": [tag], "type": "lead", "x_leadgen_key": "k", "probability": 0.0}]


def test_write_unlink_and_missing_records(sim: OdooSim) -> None:
    rid = execute(sim, "res.partner", "create", [{"name": "A"}])["result"]
    assert execute(sim, "res.partner", "write", [[rid], {"phone": "+65 1"}])["result"] is True
    assert sim.records("res.partner")[0]["phone"] == "+65 1"
    error = rpc_error(execute(sim, "res.partner", "write", [[999], {"phone": "x"}]))
    assert error["data"]["name"] == "odoo.exceptions.MissingError"
    response = j2(sim, "res.partner", "write", {"ids": [999], "vals": {"phone": "x"}})
    assert (response.status_code, j2_error(response)["name"]) == (404, "odoo.exceptions.MissingError")
    assert j2(sim, "res.partner", "unlink", {"ids": [rid]}).json() is True
    assert sim.counts()["res.partner"] == 0


def test_search_variants_and_archive_filter(sim: OdooSim) -> None:
    for name in ["b", "a", "c"]:
        execute(sim, "crm.tag", "create", [{"name": name}])
    assert execute(sim, "crm.tag", "search", [[]], {"order": "name desc", "limit": 2})["result"] == [3, 1]
    assert execute(sim, "crm.tag", "search_count", [[["name", "in", ["a", "b"]]]])["result"] == 2
    assert execute(sim, "crm.tag", "name_search", [], {"name": "c"})["result"] == [[3, "c"]]
    execute(sim, "res.partner", "create", [[{"name": "live"}, {"name": "gone", "active": False}]])
    assert execute(sim, "res.partner", "search", [[]])["result"] == [1]
    assert execute(sim, "res.partner", "search", [[["active", "=", False]]])["result"] == [2]
    assert execute(sim, "res.partner", "search", [[["active", "in", [True, False]]]])["result"] == [1, 2]


@pytest.mark.parametrize(
    "domain",
    [[["name", "between", 1]], ["|", ["name", "=", "a"]], ["&"], [["name", "="]], "name = a", [["id", "child_of", 1]]],
)
def test_invalid_domains_are_value_errors(sim: OdooSim, domain: Any) -> None:
    # crm.tag has no parent_id, so child_of is refused there as well
    error = rpc_error(execute(sim, "crm.tag", "search", [domain]))
    assert error["data"]["name"] == "builtins.ValueError"


def test_write_count_counts_only_mutating_calls(sim: OdooSim) -> None:
    rid = execute(sim, "crm.tag", "create", [{"name": "a"}])["result"]
    execute(sim, "crm.tag", "search_read", [[]], {"fields": ["name"]})
    execute(sim, "crm.tag", "read", [[rid]])
    j2(sim, "crm.tag", "search_count", {"domain": []})
    assert sim.write_count == 1
    j2(sim, "crm.tag", "write", {"ids": [rid], "vals": {"name": "b"}})
    execute(sim, "crm.tag", "write", [[999], {"name": "c"}])  # fails, but was attempted
    execute(sim, "crm.tag", "unlink", [[rid]])
    assert sim.write_count == 4


def test_fail_next_is_deterministic_and_can_apply_the_call(sim: OdooSim) -> None:
    sim.fail_next(1, status=429, retry_after=1.5)
    limited = j2(sim, "crm.tag", "search", {"domain": []})
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "1.5")
    sim.fail_next(1, status=504, method="create", after_apply=True)
    assert j2(sim, "crm.tag", "search", {"domain": []}).status_code == 200  # not a create: unaffected
    assert j2(sim, "crm.tag", "create", {"vals_list": [{"name": "a"}]}).status_code == 504
    assert sim.counts()["crm.tag"] == 1  # applied although the answer was an error
    sim.fail_next(1, status=502, method="create")
    args = [DB, sim.uid_of(LOGIN), SECRET, "crm.tag", "create", [{"name": "b"}]]
    assert rpc(sim, "object", "execute_kw", args).status_code == 502
    assert sim.counts()["crm.tag"] == 1
    assert [entry.status for entry in sim.log[-2:]] == [504, 502]


def test_malformed_jsonrpc_request_is_400(sim: OdooSim) -> None:
    response = _HTTP.post(f"{sim.base_url}/jsonrpc", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert _HTTP.post(f"{sim.base_url}/jsonrpc", json={"jsonrpc": "2.0"}).status_code == 400


def test_concurrent_creates_get_unique_ids(sim: OdooSim) -> None:
    def create(i: int) -> int:
        if i % 2:
            return int(j2(sim, "crm.tag", "create", {"vals_list": [{"name": f"t{i}"}]}).json()[0])
        return int(execute(sim, "crm.tag", "create", [{"name": f"t{i}"}])["result"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(create, range(64)))
    assert sorted(ids) == list(range(1, 65))
    assert sim.counts() == {"res.partner": 0, "crm.lead": 0, "crm.tag": 64}


# --- the realistic profile: latency and a worker pool per database ---------------------------
SCALE = 10.0  # 100-300 ms calls become 10-30 ms


def test_realistic_profile_holds_a_worker_per_call_within_a_small_pool() -> None:
    profile = SandboxProfile.parse("realistic", SCALE)
    with OdooSim(db=DB, users={LOGIN: SECRET}, profile=profile, workers=2) as sim:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda i: j2(sim, "crm.tag", "search_read", {"domain": [], "fields": ["name"]}), range(8)))
        elapsed = time.monotonic() - started
        assert sim.workers.peak_busy == 2  # never more than the pool, and the pool was used
        # 8 calls of at least 100 ms / SCALE each, two at a time
        assert elapsed >= 4 * REALISTIC_CALL_S[0] / SCALE
        one = time.monotonic()
        j2(sim, "crm.tag", "search_read", {"domain": [], "fields": ["name"]})
        assert REALISTIC_CALL_S[0] / SCALE <= time.monotonic() - one


def test_realistic_profile_serves_waiting_calls_in_arrival_order() -> None:
    profile = SandboxProfile.parse("realistic", 1.0)  # 100-300 ms a call: the queue forms behind the first
    with OdooSim(db=DB, users={LOGIN: SECRET}, profile=profile, workers=1) as sim, ThreadPoolExecutor(6) as pool:
        futures = []
        for i in range(6):
            futures.append(pool.submit(lambda n: j2(sim, "crm.tag", "create", {"vals_list": [{"name": f"t{n}"}]}), i))
            deadline = time.monotonic() + 10
            while sim.workers.arrivals <= i and time.monotonic() < deadline:  # arrived before the next is sent
                time.sleep(0.001)
        ids = [int(f.result().json()[0]) for f in futures]
        assert ids == [1, 2, 3, 4, 5, 6] and sim.workers.peak_busy == 1


def test_demo_profile_answers_without_the_pool(sim: OdooSim) -> None:
    for _ in range(5):
        j2(sim, "crm.tag", "search_read", {"domain": [], "fields": ["name"]})
    assert sim.workers.arrivals == 0 and sim.workers.peak_busy == 0


@pytest.mark.parametrize("operator", ["like", "ilike", "=like", "=ilike"])
def test_plain_like_patterns_match_as_the_expression_does(operator: str) -> None:
    """A pattern without wildcards skips the regular expression; the answers must not change,
    non-ASCII text included (it goes to the expression, with re.IGNORECASE's folding)."""
    import itertools
    import re

    from leadgen_core.sandbox.odoo_domain import like_matcher

    def expression(pattern: str) -> re.Pattern[str]:
        body = re.escape(pattern) if operator.startswith("=") else f".*{re.escape(pattern)}.*"
        return re.compile(body, re.S | (re.I if "ilike" in operator else 0))

    patterns = ["", "acme", "ACME", "Acme Pte. Ltd.", "a\nb", "Ünïcode"]
    texts = ["", "acme", "ACME", "Acme Pte. Ltd.", "xx acme pte. ltd. yy", "a\nb", "ünïcode", "ÜNÏCODE", "Ácme"]
    for pattern, text in itertools.product(patterns, texts):
        want = expression(pattern).fullmatch(text) is not None
        assert like_matcher(pattern, operator=operator)(text) is want, (pattern, text)
