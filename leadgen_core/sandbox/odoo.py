"""A loopback Odoo speaking both external APIs over one in-memory database.

* JSON-RPC (`POST /jsonrpc`, deprecated in Odoo 19 but still served): services `common`
  (`version`, `authenticate`, `login`) and `object` (`execute_kw`). Errors are HTTP 200 with a
  JSON-RPC `error` object `{code: 200, message: "Odoo Server Error", data: {name, debug,
  message, arguments, context}}`; like Odoo, `common.authenticate` answers `false` (not an error)
  for bad credentials, and `execute_kw` with a bad password fails with AccessDenied.
* JSON-2 (`POST /json/2/<model>/<method>`, Odoo 19+): `Authorization: bearer <api key>`, optional
  `X-Odoo-Database`, a body of named arguments plus `ids`/`context`. Errors are 4xx/5xx with a
  JSON body `{name, message, arguments, context, debug}`, status as Odoo 19 picks it: 401 bad
  key, 404 unknown model/method, 422 bad arguments or validation, 500 for a bare ValueError
  (unknown field, bad domain).

Both protocols accept the password and the API key alike (Odoo lets an API key replace a
password in JSON-RPC). The models live in `odoo_store`; crm.lead carries the custom field
`x_leadgen_key` that the sync layer keys leads on. `fail_next` queues deterministic faults,
including a "lost response" (the call is applied, the answer is an error) for idempotency tests.

Under the `realistic` profile every call holds one of a few workers of its database for 100-300 ms
(plus a little per record it writes), and calls beyond the pool wait in arrival order, as on a
real Odoo in multiprocessing mode; `demo` answers at once, as before.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from leadgen_core.sandbox.base import FaultConfig, SimRequest, SimResponse, SimServer, bearer_token
from leadgen_core.sandbox.odoo_domain import OdooFault
from leadgen_core.sandbox.odoo_store import RECORD_METHODS, OdooStore
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.sandbox.worker_pool import WorkerPool

JSON2_PREFIX = "/json/2/"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
DEFAULT_USERS = {"admin": "admin"}
FIRST_UID = 2  # uid 1 is OdooBot / __system__ in a real database
JSONRPC_ERROR_CODE = 200  # Odoo <= 18 (19 sends 0); clients must not rely on it
PUBLIC_METHODS = frozenset(
    {"search", "search_read", "search_count", "read", "create", "write", "unlink", "name_search", "fields_get"}
)
VERSION_INFO: dict[str, Any] = {
    "server_version": "19.0",
    "server_version_info": [19, 0, 0, "final", 0, ""],
    "server_serie": "19.0",
    "protocol_version": 1,
}
# --- the realistic profile ------------------------------------------------------------------
# A round trip of 100-300 ms per call: the figure issue 9 measured for hosted Odoo instances
# (network plus ORM time); it is held on a worker, so it also sets the pool's throughput.
REALISTIC_CALL_S = (0.100, 0.300)
# Odoo serves each request on one worker process (`--workers`, "HTTP workers (sub-processes
# processing HTTP and RPC requests)": odoo.com documentation, developer/reference/cli.rst,
# Multiprocessing). Its sizing rule is (#CPU * 2) + 1 workers with one kept for cron
# (administration/on_premise/deploy.rst, "Worker number calculation"), and an Odoo.sh
# subscription starts at one worker (administration/odoo_sh, "one worker means one odoo process").
# A small tenant's database therefore serves about two API requests at a time.
REALISTIC_WORKERS = 2
# Not from a document: an assumption that writing a record (create, write) costs a few ms of ORM
# and database time, so a batched call is cheaper than many small ones without being free.
REALISTIC_S_PER_RECORD = 0.003


@dataclass(frozen=True)
class _ForcedFailure:
    status: int
    retry_after: float | None
    after_apply: bool
    method: str | None  # only requests calling this ORM method, or any request
    model: str | None = None  # only requests on this model, or any model


def _orm_method(req: SimRequest) -> str | None:
    """The ORM method a request calls (JSON-2 path or JSON-RPC execute_kw args), if any."""
    return _orm_call(req)[1]


def _orm_call(req: SimRequest) -> tuple[str | None, str | None]:
    """The model and ORM method a request calls (JSON-2 path or JSON-RPC execute_kw args), if any."""
    if req.path.startswith(JSON2_PREFIX):
        parts = req.path[len(JSON2_PREFIX) :].split("/")
        return (parts[0], parts[-1]) if len(parts) == 2 else (None, parts[-1])
    try:
        params = req.json().get("params") or {}
        args = params.get("args") or []
        if params.get("method") == "execute_kw" and len(args) >= 5:
            return str(args[3]), str(args[4])
    except (ValueError, AttributeError, TypeError):
        pass
    return None, None


def _records_written(req: SimRequest) -> int:
    """How many records a create or write request carries (0 for reads and unparsable bodies)."""
    method = _orm_method(req)
    if method not in {"create", "write"}:
        return 0
    try:
        body = req.json()
        if req.path.startswith(JSON2_PREFIX):
            items = body.get("vals_list") if method == "create" else body.get("ids")
        else:
            items = body["params"]["args"][5][0]  # execute_kw's first positional: vals (list) or ids
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return 0
    return len(items) if isinstance(items, list) else 1


def _debug(name: str, message: str) -> str:
    return f"Traceback (most recent call last):\n  (simulated by leadgen OdooSim)\n{name}: {message}\n"


class OdooSim(SimServer):
    """An Odoo on loopback with res.partner, crm.lead and crm.tag; see the module docstring."""

    name = "odoo"

    def __init__(
        self,
        *,
        db: str = "sandbox",
        users: dict[str, str] | None = None,  # login -> password or API key
        faults: FaultConfig | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        partner_registry: bool = True,  # False: res.partner has no company_registry (Odoo 16 and older)
        workers: int = REALISTIC_WORKERS,  # realistic profile: concurrent calls served per database
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.workers = WorkerPool(workers)
        self._down = False
        self.db = db
        self._users = dict(DEFAULT_USERS if users is None else users)
        self._uids = {login: FIRST_UID + i for i, login in enumerate(self._users)}
        self.store = OdooStore(partner_registry=partner_registry)
        self._forced: deque[_ForcedFailure] = deque()
        self.route("POST", "/jsonrpc", self._jsonrpc)
        self.route("POST", JSON2_PREFIX, self._json2, prefix=True)

    def start(self) -> OdooSim:
        self._down = False
        super().start()
        assert self._server is not None
        # the base handler writes headers and body separately; without TCP_NODELAY (inherited by
        # accepted sockets) each answer waits ~40 ms for a delayed ACK
        self._server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def __enter__(self) -> OdooSim:
        return self.start()

    def stop(self) -> None:
        """Go down as a dead server does: refuse new connections and drop the kept-alive ones too."""
        self._down = True
        super().stop()

    # --- inspection for tests and the demo ------------------------------------------------
    def records(self, model: str) -> list[dict[str, Any]]:
        """Copies of MODEL's stored rows (many2one as an id, empty as False), ordered by id."""
        return self.store.records(model)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    @property
    def write_count(self) -> int:
        """How many create/write/unlink calls reached the models (failed ones included)."""
        return self.store.write_count

    def reset(self) -> None:
        """Back to an empty database: no records, no queued faults, an empty request log."""
        self.store.reset()
        with self._lock:
            self._forced.clear()
        self.workers.reset()
        self.reset_log()

    def uid_of(self, login: str) -> int:
        return self._uids[login]

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after: float | None = None,
        after_apply: bool = False,
        method: str | None = None,
        model: str | None = None,
    ) -> None:
        """Answer the next COUNT requests (calling METHOD on MODEL, if given) with STATUS.

        after_apply runs each call before answering with the fault: a lost response.
        """
        with self._lock:
            self._forced.extend(_ForcedFailure(status, retry_after, after_apply, method, model) for _ in range(count))

    def _answer(self, req: SimRequest) -> SimResponse:
        if self._down:  # a request on a connection kept alive from before stop(): hang up, answer nothing
            raise ConnectionAbortedError("the simulated Odoo is down")
        if not self.profile.realistic:
            return self._serve(req)
        with self.workers.slot(self._database_of(req)):
            time.sleep(self._service_time(req))
            return self._serve(req)

    def _database_of(self, req: SimRequest) -> str:
        if req.path.startswith(JSON2_PREFIX):
            return req.header("x-odoo-database") or self.db
        try:
            args = (req.json().get("params") or {}).get("args") or []
            return str(args[0]) if args else self.db
        except (ValueError, AttributeError, TypeError, IndexError):
            return self.db

    def _service_time(self, req: SimRequest) -> float:
        low, high = REALISTIC_CALL_S
        with self._lock:
            base = self._rng.uniform(low, high)
        return self.profile.latency(base + REALISTIC_S_PER_RECORD * _records_written(req))

    def _serve(self, req: SimRequest) -> SimResponse:
        model, called = _orm_call(req)
        with self._lock:
            forced = next((f for f in self._forced if f.method in (None, called) and f.model in (None, model)), None)
            if forced is not None:
                self._forced.remove(forced)
        if forced is None:
            return super()._answer(req)
        if forced.after_apply:
            super()._answer(req)
        headers = {} if forced.retry_after is None else {"Retry-After": f"{forced.retry_after:g}"}
        return SimResponse(forced.status, {"error": "injected fault"}, headers=headers)

    # --- JSON-RPC ---------------------------------------------------------------------------
    def _jsonrpc(self, req: SimRequest) -> SimResponse:
        try:
            payload = req.json()
        except ValueError:
            return SimResponse(400, "Invalid JSON data", content_type="text/plain")
        params = payload.get("params") if isinstance(payload, dict) else None
        if not isinstance(params, dict):
            return SimResponse(400, "Invalid JSON-RPC data", content_type="text/plain")
        envelope: dict[str, Any] = {"jsonrpc": "2.0", "id": payload.get("id")}
        try:
            args = params.get("args") or []
            if not isinstance(args, list):
                raise OdooFault("builtins.TypeError", "args must be a list", status=422)
            envelope["result"] = self._rpc(params.get("service"), params.get("method"), args)
        except OdooFault as fault:
            data = {
                "name": fault.name,
                "debug": _debug(fault.name, fault.message),
                "message": fault.message,
                "arguments": [fault.message],
                "context": {},
            }
            envelope["error"] = {"code": JSONRPC_ERROR_CODE, "message": "Odoo Server Error", "data": data}
        return SimResponse(200, envelope, content_type=JSON_CONTENT_TYPE)

    def _rpc(self, service: Any, method: Any, args: list[Any]) -> Any:
        if service == "common":
            if method == "version":
                return dict(VERSION_INFO)
            if method in {"authenticate", "login"} and len(args) >= 3:
                self._check_db(args[0])
                login, password = args[1], args[2]
                ok = isinstance(login, str) and login in self._users and self._users[login] == password
                return self._uids[login] if ok else False  # Odoo answers false, not an error
            raise OdooFault("builtins.KeyError", f"'exp_{method}'", status=500)
        if service == "object" and method == "execute_kw":
            if len(args) < 5:
                raise OdooFault("builtins.TypeError", "execute_kw() needs db, uid, password, model, method", status=422)
            db, uid, password, model, name, *rest = args
            self._check_db(db)
            login = next((lg for lg, u in self._uids.items() if u == uid), None)
            if login is None or self._users[login] != password:
                raise OdooFault("odoo.exceptions.AccessDenied", "Access Denied", status=401)
            if not self.store.has_model(model):
                raise OdooFault("odoo.exceptions.UserError", f"Object {model} doesn't exist", status=422)
            self._check_method(model, name)
            call_args = list(rest[0]) if rest and isinstance(rest[0], list) else []
            kwargs = rest[1] if len(rest) > 1 and isinstance(rest[1], dict) else {}
            kwargs = {k: v for k, v in kwargs.items() if k != "context"}
            ids: list[int] = []
            if name in RECORD_METHODS:
                if not call_args:
                    raise OdooFault("builtins.TypeError", f"{name}() missing the record ids", status=422)
                first = call_args.pop(0)
                ids = first if isinstance(first, list) else [first]
            return self.store.call(model, name, ids=ids, args=call_args, kwargs=kwargs)
        raise OdooFault("builtins.NameError", f"unknown service or method {service}.{method}", status=500)

    def _check_db(self, db: Any) -> None:
        if db != self.db:
            raise OdooFault(
                "psycopg2.OperationalError", f'connection failed: FATAL:  database "{db}" does not exist', status=500
            )

    def _check_method(self, model: str, method: Any) -> None:
        if isinstance(method, str) and method.startswith("_"):
            raise OdooFault(
                "odoo.exceptions.AccessError",
                f"Private methods (such as {model}.{method}) cannot be called remotely.",
                status=403,
            )
        if method not in PUBLIC_METHODS:
            raise OdooFault(
                "builtins.AttributeError",
                f"The method '{method}' does not exist on the model '{model}'",
                status=404,
                json2_name="werkzeug.exceptions.NotFound",
            )

    # --- JSON-2 -----------------------------------------------------------------------------
    def _json2(self, req: SimRequest) -> SimResponse:
        try:
            return SimResponse(200, self._json2_call(req), content_type=JSON_CONTENT_TYPE)
        except OdooFault as fault:
            name = fault.json2_name or fault.name
            http_style = name.startswith("werkzeug.")  # werkzeug exceptions carry (description, code)
            body: dict[str, Any] = {
                "name": name,
                "message": fault.message,
                "arguments": [fault.message, fault.status] if http_style else [fault.message],
                "context": {},
                "debug": _debug(name, fault.message),
            }
            return SimResponse(fault.status, body, content_type=JSON_CONTENT_TYPE)

    def _json2_call(self, req: SimRequest) -> Any:
        parts = req.path[len(JSON2_PREFIX) :].split("/")
        if len(parts) != 2 or not all(parts):
            raise _http_fault(404, "NotFound", "Did you mean POST /json/2/<model>/<method>?")
        database = req.header("x-odoo-database")
        if database is not None and database != self.db:
            raise _http_fault(404, "NotFound", f"database {database!r} not found")
        if bearer_token(req) not in self._users.values():
            raise _http_fault(401, "Unauthorized", "Invalid apikey")
        model, method = parts
        if not self.store.has_model(model):
            raise _http_fault(404, "NotFound", f"the model {model!r} does not exist")
        self._check_method(model, method)
        try:
            body: Any = req.json() if req.body else {}
        except ValueError as exc:
            raise _http_fault(400, "BadRequest", f"could not parse the body as json: {exc}") from exc
        if not isinstance(body, dict):
            raise _http_fault(400, "BadRequest", "could not parse the body, expecting a json object")
        ids = body.pop("ids", None) or []
        body.pop("context", None)
        if method not in RECORD_METHODS and ids:
            raise _http_fault(422, "UnprocessableEntity", f"cannot call {model}.{method} with ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise _http_fault(422, "UnprocessableEntity", "ids must be a list of integers")
        result = self.store.call(model, method, ids=ids, args=[], kwargs=body)
        # JSON-2 returns recordsets as their ids, so create always answers a list
        return [result] if method == "create" and isinstance(result, int) else result


def _http_fault(status: int, exception: str, description: str) -> OdooFault:
    name = f"werkzeug.exceptions.{exception}"
    return OdooFault(name, description, status=status, json2_name=name)
