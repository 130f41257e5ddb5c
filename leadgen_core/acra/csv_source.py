"""Reading ACRA CSV downloads without losing a row to one bad field.

The file is decoded as UTF-8 with `surrogateescape`: every undecodable byte becomes one lone
surrogate (U+DC80..U+DCFF) and nothing else changes, so the C csv parser still sees every comma,
quote and newline (those are ASCII and can never be swallowed by a broken multi-byte sequence).
Each field that carries such a surrogate is then turned back into its exact original bytes and
handed on as `bytes`; validate.py rejects it as `bad_utf8:<column>` while the rest of the file
loads. A UTF-8 BOM (Excel's "CSV UTF-8") is dropped.

The header must name every column the companies upsert reads (columns.UPSERT_COLUMNS); otherwise
`ConfigError` names the missing ones before a single row is read, so nothing is staged.

Rows are keyed by the header's column names (lower-cased, trimmed); columns beyond the staging
set are kept so a reject's raw text is complete. A line with more or fewer fields than the header
carries `BAD_SHAPE_KEY`, which validate_row turns into a `bad_shape` reject.

A record the parser cannot read (a field over `csv.field_size_limit()`, or a record over
MAX_RECORD_CHARS) is skipped to its real end, where its quotes balance, and becomes one
`oversized_record` (or `bad_shape`) reject carrying its first RAW_HEAD_CHARS characters and its
length. csv.reader alone would resume on the next physical line, inside the quoted field, and the
text there would load as companies (a 140,000-character field once staged an embedded line as
company 53999999Z).
Row numbers are the file's line number where the record starts (the header is line 1).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, TextIO

from leadgen_core.acra.validate import (
    BAD_SHAPE_KEY,
    OVERSIZED_KEY,
    Reject,
    StagingRow,
    require_upsert_columns,
    validate_row,
)
from leadgen_core.errors import ConfigError

EXTRA_FIELD_PREFIX: Final = "_extra_"
ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")
# An ACRA record with all fifteen former names is a few kilobytes; this bounds memory per record.
MAX_RECORD_CHARS: Final = 262_144
RAW_HEAD_CHARS: Final = 2_000  # what a reject keeps of an unreadable record
LINE_ENDS: Final = ("\n", "\r")

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


class _RecordTooLong(Exception):
    """Raised through csv.reader when a record grows past MAX_RECORD_CHARS."""


class _RecordLines:
    """The file's lines for csv.reader, tracking the current record's start line, length and head.

    Lines are read at most MAX_RECORD_CHARS + 1 characters at a time, so one enormous line never
    sits in memory whole. The caller marks each record the reader returns with `record_done`.
    """

    def __init__(self, handle: TextIO) -> None:
        self._readline = handle.readline
        self.line = 0  # physical lines begun so far
        self.start = 1  # the line where the current record began
        self.length = 0
        self.quotes = 0
        self.head = ""
        self._new_record = True
        self._line_open = False  # the last chunk stopped inside a physical line

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        chunk = self._read()
        if self.length > MAX_RECORD_CHARS:
            raise _RecordTooLong
        return chunk

    def _read(self) -> str:
        chunk = self._readline(MAX_RECORD_CHARS + 1)
        if not chunk:
            raise StopIteration
        if not self._line_open:
            self.line += 1
        self._line_open = not chunk.endswith(LINE_ENDS)
        if self._new_record:
            self._new_record = False
            self.start, self.length, self.quotes, self.head = self.line, 0, 0, chunk[:RAW_HEAD_CHARS]
        elif len(self.head) < RAW_HEAD_CHARS:
            self.head += chunk[: RAW_HEAD_CHARS - len(self.head)]
        self.length += len(chunk)
        self.quotes += chunk.count('"')
        return chunk

    def record_done(self) -> None:
        self._new_record = True

    def skip_record(self) -> None:
        """Consume the rest of the current record: up to the line end where its quotes balance."""
        try:
            while self._line_open or self.quotes % 2:
                self._read()
        except StopIteration:
            pass
        self._new_record = True


def _unreadable(lines: _RecordLines, exc: Exception) -> RawRow:
    """The reject row for a record the parser could not read: its head, its length, why."""
    row: RawRow = {"record_chars": str(lines.length), "raw_head": lines.head}
    if isinstance(exc, _RecordTooLong) or lines.length > csv.field_size_limit():
        row[BAD_SHAPE_KEY] = f"record of {lines.length} characters (field limit {csv.field_size_limit()})"
        row[OVERSIZED_KEY] = "1"
    else:
        row[BAD_SHAPE_KEY] = f"unparseable record: {exc}"
    return row


def iter_csv(path: str | Path) -> Iterator[tuple[int, RawRow]]:
    """(line number, raw row) for every record of an ACRA CSV; raises ConfigError for a non-ACRA header."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        lines = _RecordLines(handle)
        reader = csv.reader(lines)
        header: list[str] | None = None
        width = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                if header is None:  # an empty (or blank) file is not a registry with no companies
                    raise ConfigError(f"{path}: no ACRA header: the file is empty") from None
                return
            except (csv.Error, _RecordTooLong) as exc:
                if header is None:  # no header of ACRA's is like this; and the rest may never end (/dev/zero)
                    what = f"over {MAX_RECORD_CHARS:,} characters" if isinstance(exc, _RecordTooLong) else str(exc)
                    raise ConfigError(f"{path}: no ACRA header: the first record is unreadable ({what})") from None
                lines.skip_record()
                yield lines.start, _unreadable(lines, exc)
                continue
            line = lines.start
            lines.record_done()
            if not fields:  # blank line
                continue
            if header is None:
                header = [h.strip().lower() for h in fields]
                require_upsert_columns(header, source=str(path))
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
