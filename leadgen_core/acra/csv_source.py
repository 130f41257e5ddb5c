"""Reading ACRA CSV downloads without losing a row to one bad field.

The file is decoded as UTF-8 with `surrogateescape`: every undecodable byte becomes one lone
surrogate (U+DC80..U+DCFF) and nothing else changes, so the C csv parser still sees every comma,
quote and newline (those are ASCII and can never be swallowed by a broken multi-byte sequence).
Each field that carries such a surrogate is then turned back into its exact original bytes and
handed on as `bytes`; validate.py rejects it as `bad_utf8:<column>` while the rest of the file
loads. A UTF-8 BOM (Excel's "CSV UTF-8") is dropped.

Rows are keyed by the header's column names (lower-cased, trimmed); columns beyond the staging
set are kept so a reject's raw text is complete. A line with more or fewer fields than the header
carries `BAD_SHAPE_KEY`, which validate_row turns into a `bad_shape` reject.
Row numbers are the file's line number where the record starts (the header is line 1).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from leadgen_core.acra.validate import BAD_SHAPE_KEY, Reject, StagingRow, validate_row
from leadgen_core.errors import ConfigError

REQUIRED_HEADER: Final[frozenset[str]] = frozenset({"uen", "entity_name"})
EXTRA_FIELD_PREFIX: Final = "_extra_"
ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")

RawRow = dict[str, str | bytes]


def _restore_bytes(fields: list[str]) -> list[str | bytes]:
    """Fields that held undecodable bytes, back as those bytes; the others unchanged."""
    return [f.encode("utf-8", "surrogateescape") if ESCAPED_BYTE_RE.search(f) else f for f in fields]


def _bad_shape(header: list[str], fields: Sequence[str | bytes], note: str) -> RawRow:
    row: RawRow = {BAD_SHAPE_KEY: note}
    for index, value in enumerate(fields):
        key = header[index] if index < len(header) else f"{EXTRA_FIELD_PREFIX}{index - len(header) + 1}"
        row[key] = value
    return row


def iter_csv(path: str | Path) -> Iterator[tuple[int, RawRow]]:
    """(line number, raw row) for every record of an ACRA CSV; raises ConfigError for a non-ACRA header."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        header: list[str] | None = None
        width = 0
        start = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # The parser skips the offending record and can go on; its text is not recoverable.
                if header is not None:
                    yield start, {BAD_SHAPE_KEY: f"unparseable record: {exc}"}
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not fields:  # blank line
                continue
            if header is None:
                header = [h.strip().lower() for h in fields]
                missing = REQUIRED_HEADER - set(header)
                if missing:
                    raise ConfigError(f"{path}: not an ACRA CSV, header lacks {sorted(missing)}")
                width = len(header)
                continue
            joined = "".join(fields)
            # The common case is clean ASCII: one C-level check, no per-field work.
            values: Sequence[str | bytes] = fields
            if not joined.isascii() and ESCAPED_BYTE_RE.search(joined):
                values = _restore_bytes(fields)
            if len(values) != width:
                yield line, _bad_shape(header, values, f"{len(values)} fields, header has {width}")
                continue
            yield line, dict(zip(header, values, strict=True))


def validate_csv(path: str | Path, *, known_ssic: frozenset[str]) -> Iterator[tuple[int, StagingRow | Reject]]:
    """iter_csv followed by validate_row: (line number, staging row or reject) for every record."""
    for line, raw in iter_csv(path):
        yield line, validate_row(raw, known_ssic=known_ssic)
