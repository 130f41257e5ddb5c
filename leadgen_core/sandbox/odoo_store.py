"""The in-memory models behind the Odoo simulator: field schemas, domains and ORM-like methods.

Protocol-neutral on purpose: the same store serves JSON-RPC and JSON-2, and `OdooSim` turns the
`OdooFault`s raised here into each protocol's error shape. Values are kept the way Odoo keeps
them: an empty field is `False` (not null), a many2one is an id, a many2many a list of ids. Reads
present a many2one as `[id, display_name]`, as Odoo does.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from leadgen_core.sandbox.odoo_domain import (
    STATUS_UNPROCESSABLE,
    Field,
    OdooFault,
    bind_params,
    compile_domain,
    parse_order,
    value_error,
)

MUTATING_METHODS = frozenset({"create", "write", "unlink"})
RECORD_METHODS = frozenset({"read", "write", "unlink"})  # take ids; the others are @api.model


def _fields(**kinds: Field) -> dict[str, Field]:
    return {"name": Field("char"), "active": Field("boolean", default=True), **kinds}


SCHEMAS: dict[str, dict[str, Field]] = {
    "res.partner": _fields(
        is_company=Field("boolean"),
        company_registry=Field("char"),
        ref=Field("char"),
        vat=Field("char"),
        email=Field("char"),
        phone=Field("char"),
        website=Field("char"),
        function=Field("char"),
        street=Field("char"),
        city=Field("char"),
        zip=Field("char"),
        comment=Field("html"),
        parent_id=Field("many2one", "res.partner"),
        category_id=Field("many2many", "res.partner.category"),
        type=Field("selection", default="contact", selection=("contact", "invoice", "delivery", "other")),
    ),
    "crm.lead": _fields(
        partner_id=Field("many2one", "res.partner"),
        contact_name=Field("char"),
        partner_name=Field("char"),
        email_from=Field("char"),
        phone=Field("char"),
        website=Field("char"),
        description=Field("html"),
        expected_revenue=Field("float", default=0.0),
        probability=Field("float", default=0.0),
        tag_ids=Field("many2many", "crm.tag"),
        type=Field("selection", default="lead", selection=("lead", "opportunity")),
        # a custom field, as an administrator adds one (Settings > Technical > Fields): real Odoo
        # accepts any x_ field created that way; the sync layer keys its idempotent upserts on it
        x_leadgen_key=Field("char"),
    ),
    "crm.tag": {"name": Field("char"), "color": Field("integer", default=0)},
}


def _sort_key(fname: str) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    # empty values (False) sort last, as NULLs do in PostgreSQL's ascending order
    return lambda r: (r[fname] is False, r[fname] if r[fname] is not False else 0)


def _sanitize_html(value: str) -> str:
    # Odoo's html fields sanitize input: plain text comes back wrapped in a paragraph
    if value.lstrip().startswith("<"):
        return value
    return "<p>" + html.escape(value, quote=False).replace("\n", "<br>") + "</p>"


def _clean_website(value: str) -> str:
    # res.partner._clean_website: a website without a scheme gets http://
    return value if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I) else f"http://{value}"


class OdooStore:
    """Thread-safe records of every simulated model, with auto-incremented ids."""

    def __init__(self, *, partner_registry: bool = True) -> None:
        """PARTNER_REGISTRY False: res.partner without `company_registry`, as before Odoo 17."""
        self._lock = threading.RLock()
        self._schemas = {model: dict(fields) for model, fields in SCHEMAS.items()}
        if not partner_registry:
            del self._schemas["res.partner"]["company_registry"]
        self._data: dict[str, dict[int, dict[str, Any]]] = {model: {} for model in SCHEMAS}
        self._next_id: dict[str, int] = dict.fromkeys(SCHEMAS, 1)
        self._rejected: set[tuple[str, str, Any]] = set()
        self.write_count = 0

    def reset(self) -> None:
        """Forget every record, restart the ids and the write counter."""
        with self._lock:
            self._data = {model: {} for model in SCHEMAS}
            self._next_id = dict.fromkeys(SCHEMAS, 1)
            self._rejected = set()
            self.write_count = 0

    # --- inspection -----------------------------------------------------------------------
    def has_model(self, model: str) -> bool:
        return model in self._schemas

    def fields_of(self, model: str) -> Mapping[str, Field]:
        return self._schemas.get(model, {})

    def records(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: list(v) if isinstance(v, list) else v for k, v in rec.items()} for rec in self._rows(model)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {model: len(rows) for model, rows in self._data.items()}

    # --- dispatch -------------------------------------------------------------------------
    def call(self, model: str, method: str, *, ids: list[int], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Run METHOD on MODEL; the caller has checked that both exist."""
        with self._lock:
            if method in MUTATING_METHODS:
                self.write_count += 1  # counted even when it fails: a dry run must not even try
            p = bind_params(method, args, kwargs)
            if method == "search":
                return self._search(model, p["domain"], offset=p["offset"], limit=p["limit"], order=p["order"])
            if method == "search_read":
                found = self._search(model, p["domain"] or [], offset=p["offset"], limit=p["limit"], order=p["order"])
                return self._read(model, found, p["fields"])
            if method == "search_count":
                return len(self._search(model, p["domain"], offset=0, limit=p["limit"], order=None))
            if method == "read":
                return self._read(model, ids, p["fields"])
            if method == "create":
                return self._create(model, p["vals_list"])
            if method == "write":
                return self._write(model, ids, p["vals"])
            if method == "unlink":
                for rid in self._existing(model, ids):
                    del self._data[model][rid]
                return True
            if method == "name_search":
                domain = [["display_name", p["operator"], p["name"]], *(p["domain"] or [])]
                found = self._search(model, domain, offset=0, limit=p["limit"], order=None)
                return [[rid, self.display_name(model, rid)] for rid in found]
            return {
                name: {"type": f.type, "string": name, "relation": f.relation or False}
                for name, f in self._schemas[model].items()
            }

    # --- reading --------------------------------------------------------------------------
    def _rows(self, model: str) -> list[dict[str, Any]]:
        if model not in self._schemas:
            raise ValueError(f"unknown model {model!r}")
        return [self._data[model][rid] for rid in sorted(self._data[model])]

    def display_name(self, model: str, rid: int) -> str | bool:
        rec = self._data.get(model, {}).get(rid)
        if rec is None:
            return False
        parent = rec.get("parent_id")
        if parent and not rec.get("is_company"):
            return f"{self.display_name(model, parent)}, {rec['name']}"
        return str(rec["name"])

    def parent_of(self, model: str, rid: int) -> int | None:
        rec = self._data.get(model, {}).get(rid)
        return rec.get("parent_id") or None if rec else None

    def _search(self, model: str, domain: Any, *, offset: int, limit: int | None, order: str | None) -> list[int]:
        predicate, mentions_active = compile_domain(self, model, domain)
        rows = self._rows(model)
        if "active" in self._schemas[model] and not mentions_active:
            rows = [r for r in rows if r["active"]]  # Odoo hides archived records unless asked
        rows = [r for r in rows if predicate(r)]
        for fname, descending in reversed(parse_order(order, self._schemas[model])):
            rows.sort(key=_sort_key(fname), reverse=descending)
        ids = [int(r["id"]) for r in rows][offset or 0 :]
        return ids[:limit] if limit else ids

    def _existing(self, model: str, ids: Sequence[Any]) -> list[int]:
        missing = [rid for rid in ids if rid not in self._data[model]]
        if missing:
            raise OdooFault(
                "odoo.exceptions.MissingError",
                f"Record does not exist or has been deleted.\n(Record: {model}({missing[0]},), User: 2)",
                status=404,
            )
        return [int(rid) for rid in ids]

    def _read(self, model: str, ids: Sequence[Any], fields: Sequence[str] | None) -> list[dict[str, Any]]:
        schema = self._schemas[model]
        wanted = list(fields) if fields else list(schema)
        for fname in wanted:
            if fname not in schema and fname not in {"id", "display_name"}:
                raise value_error(f"Invalid field {fname!r} on model {model!r}")
        out = []
        for rid in self._existing(model, ids):
            rec = self._data[model][rid]
            row: dict[str, Any] = {"id": rid}
            for fname in wanted:
                if fname == "display_name":
                    row[fname] = self.display_name(model, rid)
                elif fname != "id":
                    row[fname] = self._present(schema[fname], rec[fname])
            out.append(row)
        return out

    def _present(self, field: Field, value: Any) -> Any:
        if field.type == "many2one" and value:
            return [value, self.display_name(field.relation or "", value)]
        return list(value) if isinstance(value, list) else value

    # --- writing --------------------------------------------------------------------------
    def _create(self, model: str, vals_list: Any) -> int | list[int]:
        single = isinstance(vals_list, dict)
        batch = [vals_list] if single else vals_list
        if not isinstance(batch, list) or not all(isinstance(v, dict) for v in batch):
            raise value_error("create() expects a dict or a list of dicts")
        # Odoo runs a request in one transaction: one invalid record and none is created
        recs = []
        for vals in batch:
            rec = {f: [] if d.type == "many2many" else d.default for f, d in self._schemas[model].items()}
            rec.update(self._convert(model, vals, rec))
            if not rec.get("name"):
                raise OdooFault(
                    "odoo.exceptions.ValidationError",
                    f"Missing required value for the field 'name' on model '{model}'",
                    status=STATUS_UNPROCESSABLE,
                )
            self._check_rejected(model, rec)
            recs.append(rec)
        new_ids = []
        for rec in recs:
            rid = self._next_id[model]
            self._next_id[model] = rid + 1
            self._data[model][rid] = {"id": rid, **rec}
            new_ids.append(rid)
        return new_ids[0] if single else new_ids

    def _write(self, model: str, ids: Sequence[Any], vals: Any) -> bool:
        if not isinstance(vals, dict):
            raise value_error("write() expects a dict of values")
        updates = {rid: {**self._data[model][rid], **self._convert(model, vals, self._data[model][rid])}
                   for rid in self._existing(model, ids)}  # fmt: skip
        for rec in updates.values():
            self._check_rejected(model, rec)
        for rid, rec in updates.items():
            self._data[model][rid] = rec
        return True

    def reject(self, model: str, field: str, value: Any) -> None:
        """Refuse, as a constraint would, any create or write leaving FIELD of MODEL equal to VALUE."""
        with self._lock:
            self._rejected.add((model, field, value))

    def clear_rejections(self) -> None:
        with self._lock:
            self._rejected.clear()

    def _check_rejected(self, model: str, rec: Mapping[str, Any]) -> None:
        for m, fname, value in self._rejected:
            if m == model and rec.get(fname) == value:
                raise OdooFault(
                    "odoo.exceptions.ValidationError",
                    f"The value of {model}.{fname} is not allowed here (simulated constraint)",
                    status=STATUS_UNPROCESSABLE,
                )

    def _convert(self, model: str, vals: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
        schema = self._schemas[model]
        out: dict[str, Any] = {}
        for fname, value in vals.items():
            field = schema.get(fname)
            if field is None:
                raise value_error(f"Invalid field {fname!r} on model {model!r}")
            out[fname] = self._coerce(model, fname, field, value, current.get(fname))
        return out

    def _coerce(self, model: str, fname: str, field: Field, value: Any, current: Any) -> Any:
        if field.type == "many2many":
            return self._m2m_commands(field, value, list(current or []))
        if value is None or value is False:
            return {"boolean": False, "integer": 0, "float": 0.0}.get(field.type, False)
        if field.type == "boolean":
            return bool(value)
        if field.type in {"integer", "float"}:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise value_error(f"Wrong value for {model}.{fname}: {value!r}")
            return int(value) if field.type == "integer" else float(value)
        if field.type == "many2one":
            if not isinstance(value, int) or value not in self._data.get(field.relation or "", {}):
                raise OdooFault(
                    "odoo.exceptions.ValidationError",
                    f"The operation cannot be completed: {model}.{fname} refers to a record that does not exist",
                    status=STATUS_UNPROCESSABLE,
                )
            return value
        if not isinstance(value, str):
            raise value_error(f"Wrong value for {model}.{fname}: {value!r}")
        if field.type == "selection" and value not in field.selection:
            raise value_error(f"Wrong value for {model}.{fname}: {value!r}")
        if field.type == "html":
            return _sanitize_html(value)
        if model == "res.partner" and fname == "website":
            return _clean_website(value)
        return value

    def _m2m_commands(self, field: Field, value: Any, current: list[int]) -> list[int]:
        # plain id lists and the (6, 0, ids) / (4, id) / (3, id) / (5,) commands Odoo accepts
        if value is False or value is None:
            return []
        if not isinstance(value, list):
            raise value_error(f"Wrong value for a many2many field: {value!r}")
        if all(isinstance(v, int) for v in value):
            return self._check_related(field, value)
        result = list(current)
        for command in value:
            if not isinstance(command, list) or not command or command[0] not in {3, 4, 5, 6}:
                raise value_error(f"Unsupported many2many command: {command!r}")
            if command[0] == 6:
                result = self._check_related(field, list(command[2]))
            elif command[0] == 5:
                result = []
            elif command[0] == 4 and command[1] not in result:
                result.append(self._check_related(field, [command[1]])[0])
            elif command[0] == 3:
                result = [rid for rid in result if rid != command[1]]
        return result

    def _check_related(self, field: Field, ids: list[int]) -> list[int]:
        related = self._data.get(field.relation or "")
        if related is not None and any(rid not in related for rid in ids):
            raise OdooFault("odoo.exceptions.MissingError", "Record does not exist or has been deleted.", status=404)
        return list(dict.fromkeys(ids))
