"""Validation of one raw ACRA row into a typed staging row, or a reject with a precise reason.

A raw row is a mapping of ACRA column names to values as they arrived: `str` from the API or a
well-formed CSV field, `bytes` for a CSV field that was not valid UTF-8 (see csv_source), numbers
from JSON. Extra keys (`_id`, `former_entity_name1`, ...) are ignored; absent columns are None.

Reasons, checked in this order (the first failure wins):

    oversized_record          csv_source met a field over the parser's limit (or a record over
                              MAX_RECORD_CHARS): the whole record, kept truncated with its length
    bad_shape                 csv_source could not split the line into the header's columns
    bad_utf8:<column>         bytes that are not UTF-8, or text with U+FFFD / lone surrogates
    control_characters:<col>  C0/C1 control characters other than tab, CR, LF (DEL included)
    field_too_long:<column>   longer than columns.MAX_LENGTHS after trimming
    missing_name              entity_name absent or "na"
    bad_uen                   not one of ACRA's three UEN formats
    impossible_date:<column>  not YYYY-MM-DD, not a calendar date, or outside 1800..2200
    unknown_ssic:<code>       a primary/secondary code that is not an SSIC 2025 sub-class
    bad_number:no_of_officers not a non-negative integer

This runs a million times per refresh, so the happy path works column-wise in C (itemgetter,
map(str.strip), a dict lookup that turns "na" into None, one printable-check over the joined row),
parses each distinct date once, and fills the StagingRow's __dict__ in one call.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from leadgen_core.acra.columns import (
    DATE_COLUMNS,
    MAX_LENGTHS,
    NA_VALUES,
    SSIC_CODE_COLUMNS,
    STAGING_COLUMNS,
    UPSERT_COLUMNS,
)
from leadgen_core.errors import ConfigError

BAD_SHAPE_KEY: Final = "__bad_shape__"
# Carried (with BAD_SHAPE_KEY) by a record that was cut short for its size: reason oversized_record.
OVERSIZED_KEY: Final = "__oversized_record__"
MIN_YEAR: Final = 1800
MAX_YEAR: Final = 2200
DATE_CACHE_SIZE: Final = 100_000

# Businesses nnnnnnnnX; local companies yyyynnnnnX; others [TSR]yyPQnnnnX (T=20xx, S=19xx, R=18xx).
UEN_RE: Final = re.compile(r"\d{8}[A-Z]|(?:18|19|20)\d{7}[A-Z]|[TSR]\d{2}[A-Z]{2}\d{4}[A-Z]")
# Text that cannot have come from valid UTF-8: the replacement character or any lone surrogate
# (surrogateescape maps undecodable bytes to U+DC80..U+DCFF).
BAD_UTF8_RE: Final = re.compile("[\ufffd\ud800-\udfff]")
CONTROL_RE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

_LIMITS: Final = tuple(MAX_LENGTHS[c] for c in STAGING_COLUMNS)
_DATE_INDEXES: Final = tuple(STAGING_COLUMNS.index(c) for c in DATE_COLUMNS)
_SSIC_INDEXES: Final = tuple(STAGING_COLUMNS.index(c) for c in SSIC_CODE_COLUMNS)
_I_NAME: Final = STAGING_COLUMNS.index("entity_name")
_I_OFFICERS: Final = STAGING_COLUMNS.index("no_of_officers")
_UEN_MATCH = UEN_RE.fullmatch
_ISO_DATE = date.fromisoformat
_STRIP = str.strip
_GT = operator.gt
_NA_TO_NONE = dict.fromkeys(NA_VALUES).get
_ROW_VALUES = operator.attrgetter(*STAGING_COLUMNS)
_GET_COLUMNS = operator.itemgetter(*STAGING_COLUMNS)
_NEW = object.__new__
_DATE_CACHE: dict[str, date] = {}
_DATE_CACHE_GET = _DATE_CACHE.get
_SETATTR = object.__setattr__


@dataclass(frozen=True)
class StagingRow:
    """One valid ACRA row, typed; fields in STAGING_COLUMNS order, None where ACRA says "na"."""

    uen: str
    entity_name: str
    entity_type_description: str | None
    business_constitution_description: str | None
    company_type_description: str | None
    paf_constitution_description: str | None
    entity_status_description: str | None
    registration_incorporation_date: date | None
    uen_issue_date: date | None
    address_type: str | None
    block: str | None
    street_name: str | None
    level_no: str | None
    unit_no: str | None
    building_name: str | None
    postal_code: str | None
    other_address_line1: str | None
    other_address_line2: str | None
    account_due_date: date | None
    annual_return_date: date | None
    primary_ssic_code: str | None
    primary_ssic_description: str | None
    primary_user_described_activity: str | None
    secondary_ssic_code: str | None
    secondary_ssic_description: str | None
    secondary_user_described_activity: str | None
    no_of_officers: int | None

    def as_tuple(self) -> tuple[object, ...]:
        """The values in STAGING_COLUMNS order (what a COPY into staging wants)."""
        values: tuple[object, ...] = _ROW_VALUES(self)
        return values


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that cannot be staged: why, whose (a well-formed UEN or None), and the row as it arrived."""

    reason: str
    uen: str | None
    raw_text: str


def _lossless_text(value: object) -> object:
    """A JSON-safe rendering of a raw value that keeps every byte (undecodable ones as \\xNN)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        if not BAD_UTF8_RE.search(value):
            return value
        try:  # surrogateescape restores the original bytes, so \xNN names the byte that arrived
            data = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that never was a byte (e.g. from JSON \ud800)
            data = value.encode("utf-8", "backslashreplace")
        return data.decode("utf-8", "backslashreplace")
    if value is None or isinstance(value, (int, float)):
        return value
    return str(value)


def raw_text(raw: Mapping[str, object]) -> str:
    """The row as arrived, as a JSON object: lossless, and always valid UTF-8 without NUL."""
    return json.dumps({str(k): _lossless_text(v) for k, v in raw.items()}, ensure_ascii=False)


def _reject(reason: str, raw: Mapping[str, object], uen: object = None) -> Reject:
    good_uen = None
    if isinstance(uen, str):
        candidate = uen.strip().upper()
        good_uen = candidate if _UEN_MATCH(candidate) else None
    return Reject(reason, good_uen, raw_text(raw))


def missing_upsert_columns(columns: Iterable[str]) -> list[str]:
    """The columns the companies upsert reads that COLUMNS lacks, in UPSERT_COLUMNS order."""
    present = {c.strip().lower() for c in columns}
    return [c for c in UPSERT_COLUMNS if c not in present]


def require_upsert_columns(columns: Iterable[str], *, source: str) -> None:
    """Raise ConfigError naming every missing column when COLUMNS cannot feed the companies upsert.

    Checked before the first row is staged, so a refused source stages nothing.
    """
    missing = missing_upsert_columns(columns)
    if missing:
        raise ConfigError(
            f"{source}: not an ACRA registry source, missing column(s) {', '.join(missing)}; nothing staged"
        )


def _text_problem(values: list[str | None]) -> str | None:
    """The reason for the first value with bad UTF-8 or control characters, if any."""
    for column, value in zip(STAGING_COLUMNS, values, strict=True):
        if value is None:
            continue
        if BAD_UTF8_RE.search(value):
            return f"bad_utf8:{column}"
        if CONTROL_RE.search(value):
            return f"control_characters:{column}"
    return None


def _as_text(values: Sequence[object], raw: Mapping[str, object]) -> list[str] | Reject:
    """The slow path for rows that are not all str: None -> "", bytes decoded strictly, numbers str()."""
    out: list[str] = []
    for column, value in zip(STAGING_COLUMNS, values, strict=True):
        if value is None:
            out.append("")
        elif isinstance(value, str):
            out.append(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            try:
                out.append(bytes(value).decode("utf-8"))
            except UnicodeDecodeError:
                return _reject(f"bad_utf8:{column}", raw, raw.get("uen"))
        else:  # numbers from JSON
            out.append(str(value))
    return out


def _parse_date(text: str) -> date | None:
    """YYYY-MM-DD within MIN_YEAR..MAX_YEAR, else None."""
    # fromisoformat also takes compact and week forms; ACRA only writes YYYY-MM-DD.
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        parsed = _ISO_DATE(text)
    except ValueError:
        return None
    return parsed if MIN_YEAR <= parsed.year <= MAX_YEAR else None


def _new_row(values: list[Any]) -> StagingRow:
    """Build a StagingRow from checked values without the generated __init__.

    The frozen __init__ sets 27 attributes one object.__setattr__ at a time (~7 us per row, most
    of the validation budget at a million rows); filling __dict__ in one C call is equivalent.
    """
    row = _NEW(StagingRow)
    _SETATTR(row, "__dict__", dict(zip(STAGING_COLUMNS, values, strict=True)))
    return row


def validate_row(raw: Mapping[str, object], *, known_ssic: frozenset[str]) -> StagingRow | Reject:
    """Validate and normalise one raw ACRA row (see the module docstring for the reasons)."""
    if BAD_SHAPE_KEY in raw:
        if OVERSIZED_KEY in raw:
            return _reject("oversized_record", raw)
        return _reject("bad_shape", raw, raw.get("uen"))
    # Column-wise C-level passes (map) instead of a Python loop per field: this runs 1M times.
    try:
        values: Sequence[Any] = _GET_COLUMNS(raw)
    except KeyError:  # a file or record without some staging columns: those are None
        values = list(map(raw.get, STAGING_COLUMNS))
    try:
        stripped: list[str] = list(map(_STRIP, values))
    except TypeError:  # a None, bytes or number somewhere: normalise, then strip
        texts = _as_text(values, raw)
        if isinstance(texts, Reject):
            return texts
        stripped = list(map(_STRIP, texts))
    cleaned: list[Any] = list(map(_NA_TO_NONE, stripped, stripped))  # "na" -> None, else itself

    # Printable text has no control characters and no surrogates; U+FFFD is printable, so ask.
    joined = "".join(stripped)
    if not joined.isprintable() or "\ufffd" in joined:
        problem = _text_problem(cleaned)
        if problem is not None:
            return _reject(problem, raw, cleaned[0])
    if any(map(_GT, map(len, stripped), _LIMITS)):
        column = next(c for c, t, m in zip(STAGING_COLUMNS, stripped, _LIMITS, strict=True) if len(t) > m)
        return _reject(f"field_too_long:{column}", raw, cleaned[0])
    if cleaned[_I_NAME] is None:
        return _reject("missing_name", raw, cleaned[0])
    uen = cleaned[0]
    if uen is None or not _UEN_MATCH(uen := uen.upper()):
        return _reject("bad_uen", raw)
    cleaned[0] = uen

    for index in _DATE_INDEXES:
        text = cleaned[index]
        if text is None:
            continue
        # A registry spans a few tens of thousands of distinct days: parse each once.
        parsed = _DATE_CACHE_GET(text)
        if parsed is None:
            parsed = _parse_date(text)
            if parsed is None:
                return _reject(f"impossible_date:{STAGING_COLUMNS[index]}", raw, uen)
            if len(_DATE_CACHE) >= DATE_CACHE_SIZE:
                _DATE_CACHE.clear()
            _DATE_CACHE[text] = parsed
        cleaned[index] = parsed
    for index in _SSIC_INDEXES:
        code = cleaned[index]
        if code is not None and code not in known_ssic:
            return _reject(f"unknown_ssic:{code}", raw, uen)
    officers = cleaned[_I_OFFICERS]
    if officers is not None:
        if not (officers.isascii() and officers.isdigit()):
            return _reject("bad_number:no_of_officers", raw, uen)
        cleaned[_I_OFFICERS] = int(officers)
    return _new_row(cleaned)
