"""Odoo search domains, orderings and method signatures, evaluated in memory for the Odoo simulator.

A domain is a list in Polish notation: `&`, `|` (two operands) and `!` (one) prefix the terms,
and consecutive terms are implicitly AND-ed. Leaves are `[field, operator, value]` (tuples arrive
as lists over JSON). The operators are those the sync client and most integrations use; anything
else is refused with Odoo's ValueError so a test can never pass on an operator the sim ignores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

LIKE_OPERATORS = frozenset({"like", "ilike", "=like", "=ilike"})
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}
NEGATIONS = {"!=": "=", "<>": "=", "not in": "in", "not like": "like", "not ilike": "ilike"}
OPERATORS = frozenset({"=", "in", "child_of", *LIKE_OPERATORS, *COMPARISONS, *NEGATIONS})
STATUS_UNPROCESSABLE = 422
REQUIRED = object()  # sentinel default: the parameter must be given
METHOD_PARAMS: dict[str, tuple[tuple[str, Any], ...]] = {
    "search": (("domain", REQUIRED), ("offset", 0), ("limit", None), ("order", None)),
    "search_read": (("domain", None), ("fields", None), ("offset", 0), ("limit", None), ("order", None)),
    "search_count": (("domain", REQUIRED), ("limit", None)),
    "read": (("fields", None), ("load", "_classic_read")),
    "create": (("vals_list", REQUIRED),),
    "write": (("vals", REQUIRED),),
    "unlink": (),
    "name_search": (("name", ""), ("domain", None), ("operator", "ilike"), ("limit", 100)),
    "fields_get": (("allfields", None), ("attributes", None)),
}

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]


@dataclass(frozen=True)
class Field:
    """A field's type; `relation` names the comodel of relational fields."""

    type: str
    relation: str | None = None
    default: Any = False
    selection: tuple[str, ...] = ()


class OdooFault(Exception):
    """An exception as Odoo raises it: the Python name, the message and the JSON-2 HTTP status."""

    def __init__(self, name: str, message: str, *, status: int, json2_name: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.status = status
        self.json2_name = json2_name  # JSON-2 reports some faults as the werkzeug exception it raises


def value_error(message: str) -> OdooFault:
    # Odoo raises a bare ValueError for bad fields and domains, which JSON-2 answers with a 500
    return OdooFault("builtins.ValueError", message, status=500)


def type_error(message: str) -> OdooFault:
    return OdooFault(
        "builtins.TypeError", message, status=STATUS_UNPROCESSABLE, json2_name="werkzeug.exceptions.UnprocessableEntity"
    )


def bind_params(method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Bind positional and keyword arguments the way Python would, with Odoo's TypeError messages."""
    params = METHOD_PARAMS[method]
    names = [name for name, _ in params]
    if len(args) > len(params):
        raise type_error(f"{method}() takes {len(params) + 1} positional arguments but {len(args) + 1} were given")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise type_error(f"{method}() got an unexpected keyword argument {key!r}")
        if key in bound:
            raise type_error(f"{method}() got multiple values for argument {key!r}")
        bound[key] = value
    for name, default in params:
        if name not in bound:
            if default is REQUIRED:
                raise type_error(f"{method}() missing 1 required positional argument: {name!r}")
            bound[name] = default
    return bound


class Resolver(Protocol):
    """What domain evaluation needs from the store: schemas, names and the partner hierarchy."""

    def fields_of(self, model: str) -> Mapping[str, Field]: ...

    def display_name(self, model: str, rid: int) -> str | bool: ...

    def parent_of(self, model: str, rid: int) -> int | None: ...


def compile_domain(res: Resolver, model: str, domain: Any) -> tuple[Predicate, bool]:
    """A predicate for DOMAIN, and whether the domain mentions `active` (which lifts the archive filter)."""
    terms: list[Any] = [] if domain in (None, False) else domain
    if not isinstance(terms, list):
        raise value_error(f"Invalid domain: {domain!r}")
    mentions_active = False

    def term(pos: int) -> tuple[Predicate, int]:
        nonlocal mentions_active
        if pos >= len(terms):
            raise value_error(f"Invalid domain {domain!r}: an operator lacks its operands")
        item = terms[pos]
        if item in ("&", "|"):
            left, pos = term(pos + 1)
            right, pos = term(pos)
            if item == "&":
                return (lambda r: left(r) and right(r)), pos
            return (lambda r: left(r) or right(r)), pos
        if item == "!":
            inner, pos = term(pos + 1)
            return (lambda r: not inner(r)), pos
        if isinstance(item, (list, tuple)) and len(item) == 3:
            mentions_active = mentions_active or item[0] == "active"
            return _leaf(res, model, list(item)), pos + 1
        raise value_error(f"Invalid leaf {item!r}")

    predicates: list[Predicate] = []
    pos = 0
    while pos < len(terms):
        predicate, pos = term(pos)
        predicates.append(predicate)
    return (lambda r: all(p(r) for p in predicates)), mentions_active


def parse_order(order: Any, schema: Mapping[str, Field]) -> list[tuple[str, bool]]:
    """`"name desc, id"` -> [("name", True), ("id", False)]; the default order is by id."""
    if not order:
        return [("id", False)]
    out = []
    for part in str(order).split(","):
        words = part.split()
        if not words or len(words) > 2 or (words[0] not in schema and words[0] != "id"):
            raise value_error(f"Invalid order {order!r}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in {"asc", "desc"}:
            raise value_error(f"Invalid order {order!r}")
        out.append((words[0], direction == "desc"))
    return out


def like_matcher(pattern: str, *, operator: str) -> Callable[[str], bool]:
    """SQL LIKE semantics: % and _ are wildcards, a backslash escapes; like/ilike match a substring."""
    if pattern.isascii() and not any(ch in pattern for ch in "%_\\"):
        return _plain_matcher(pattern, operator=operator)
    parts = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    body = "".join(parts)
    if not operator.startswith("="):
        body = f".*{body}.*"  # Odoo wraps like/ilike values in %...%
    compiled = re.compile(body, re.S | (re.I if "ilike" in operator else 0))
    return lambda text: compiled.fullmatch(text) is not None


def _plain_matcher(pattern: str, *, operator: str) -> Callable[[str], bool]:
    """`like_matcher` of an ASCII PATTERN without wildcards or escapes, without a regular expression
    (the sync sends one such pattern per company name: compiling each cost the simulator more than
    the lookup). A text that is not ASCII is matched by the expression, so case folding is the
    same as re.IGNORECASE's."""
    fold = "ilike" in operator
    whole = operator.startswith("=")
    needle = pattern.lower() if fold else pattern
    slow: list[Callable[[str], bool]] = []

    def match(text: str) -> bool:
        if not text.isascii():
            if not slow:
                escaped = re.escape(pattern) if whole else f".*{re.escape(pattern)}.*"
                compiled = re.compile(escaped, re.S | (re.I if fold else 0))
                slow.append(lambda t: compiled.fullmatch(t) is not None)
            return slow[0](text)
        hay = text.lower() if fold else text
        return hay == needle if whole else needle in hay

    return match


def _leaf(res: Resolver, model: str, leaf: list[Any]) -> Predicate:
    fname, op, value = leaf
    if fname in (0, 1) and op == "=" and value == 1:
        truth = fname == 1  # Odoo's TRUE_LEAF / FALSE_LEAF
        return lambda r: truth
    if not isinstance(op, str) or op not in OPERATORS:
        raise value_error(f"Invalid operator {op!r} in leaf {leaf!r}")
    schema = res.fields_of(model)
    if fname == "id":
        field = Field("many2one", model)  # an id behaves like a many2one to its own model
    elif fname == "display_name":
        field = Field("char")
    elif isinstance(fname, str) and fname in schema:
        field = schema[fname]
    else:
        raise value_error(f"Invalid field {fname!r} on model {model!r} in leaf {leaf!r}")
    negated = op in NEGATIONS
    test = _positive_test(res, model, fname, field, NEGATIONS.get(op, op), value)
    return (lambda r: not test(r)) if negated else test


def _positive_test(res: Resolver, model: str, fname: str, field: Field, op: str, value: Any) -> Predicate:
    def raw(r: Record) -> Any:
        if fname == "display_name":
            return res.display_name(model, int(r["id"]))
        return r[fname]

    if op in {"in", "child_of"} and not isinstance(value, list):
        value = [value]
    if op in LIKE_OPERATORS:
        if not isinstance(value, str):
            raise value_error(f"Invalid value {value!r} for operator {op!r}")
        match = like_matcher(value, operator=op)
        if field.type in {"many2one", "many2many"}:
            relation = field.relation or model
            return lambda r: any(
                isinstance(name := res.display_name(relation, rid), str) and match(name) for rid in _ids(raw(r))
            )
        return lambda r: isinstance(raw(r), str) and match(raw(r))
    if op == "child_of":
        if field.type != "many2one" or "parent_id" not in res.fields_of(field.relation or model):
            raise value_error(f"Operator 'child_of' is not supported on {model}.{fname}")
        targets, relation = set(value), field.relation or model
        return lambda r: any(not targets.isdisjoint(_lineage(res, relation, rid)) for rid in _ids(raw(r)))
    if field.type == "many2many":
        if op == "=":
            return (lambda r: not raw(r)) if value is False else (lambda r: value in raw(r))
        if op == "in":
            wanted = set(value)
            return lambda r: not wanted.isdisjoint(raw(r)) or (False in wanted and not raw(r))
        raise value_error(f"Operator {op!r} is not supported on many2many {model}.{fname}")
    if op == "=":
        return lambda r: bool(raw(r) == value)
    if op == "in":
        try:
            wanted_keys = frozenset(value)  # a key chunk of hundreds: one hash lookup a record, not hundreds
        except TypeError:  # an unhashable operand (a list in the list): compared one by one
            return lambda r: raw(r) in value

        def among(r: Record) -> bool:
            current = raw(r)
            try:
                return current in wanted_keys
            except TypeError:  # an unhashable value (a list): compared one by one, as a list would
                return current in value

        return among
    compare = COMPARISONS[op]

    def ordered(r: Record) -> bool:
        current = raw(r)
        if current is False or value is False:
            return False  # SQL: a comparison with NULL is never true
        try:
            return compare(current, value)
        except TypeError as exc:
            raise value_error(f"Invalid value {value!r} for {model}.{fname}") from exc

    return ordered


def _ids(value: Any) -> Sequence[int]:
    if isinstance(value, list):
        return value
    return [value] if value else []


def _lineage(res: Resolver, model: str, rid: int) -> set[int]:
    """RID and all its ancestors through parent_id (cycle-safe)."""
    seen: set[int] = set()
    current: int | None = rid
    while current is not None and current not in seen:
        seen.add(current)
        current = res.parent_of(model, current)
    return seen
