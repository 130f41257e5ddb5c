"""Loading registry rows from any source into staging, quarantining what is malformed.

Sources yield `(row_number, raw_row)`; each row is validated, good rows are COPYed to staging
in batches (each batch its own transaction, so a crash loses at most one batch), and rejects
are kept with their reason and raw text. Progress is reported per batch.

A UEN appears once in a load: the first valid row of a UEN (the earliest line of a file, the
earliest record of a datastore resource) is staged, and every later valid row with that UEN goes
to quarantine as `duplicate_uen`, raw text kept. A later row is never silently merged over an
earlier one (staging's ON CONFLICT would otherwise keep whichever batch came last).

A datastore source whose first record lacks a column the companies upsert reads is refused
before anything is staged (the CSV source checks its header the same way).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date

import psycopg

from leadgen_core.acra.ssic import subclass_codes
from leadgen_core.acra.validate import Reject, StagingRow, raw_text, require_upsert_columns, validate_row
from leadgen_core.registry.upsert import RejectRow, quarantine, stage_rows

BATCH_ROWS = 50_000

ConnFactory = Callable[[], AbstractContextManager[psycopg.Connection]]
Progress = Callable[[int, int], None]  # (rows seen, rows rejected)


@dataclass
class LoadCounts:
    seen: int = 0
    staged: int = 0
    rejected: int = 0
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_metadata(self) -> dict[str, object]:
        return {
            "rows_seen": self.seen,
            "rows_staged": self.staged,
            "rows_rejected": self.rejected,
            "reject_reasons": dict(self.reasons.most_common(20)),
            "load_seconds": round(self.seconds, 2),
        }


class _Batcher:
    def __init__(self, *, conn: ConnFactory, snapshot_date: date, source: str, progress: Progress | None) -> None:
        self.conn, self.snapshot_date, self.source, self.progress = conn, snapshot_date, source, progress
        self.known = subclass_codes()
        self.good: list[tuple[object, ...]] = []
        self.bad: list[RejectRow] = []
        self.counts = LoadCounts()
        self.started = time.monotonic()
        self.seen_uens: set[int] = set()

    def add(self, row_number: int | None, raw: Mapping[str, object]) -> None:
        self.counts.seen += 1
        result = validate_row(raw, known_ssic=self.known)
        if isinstance(result, StagingRow):
            # A UEN is [0-9A-Z]{9,10}: base 36 plus its length is a unique int, half the memory of
            # the str at a million rows.
            key = int(result.uen, 36) * 16 + len(result.uen)
            if key in self.seen_uens:
                self.bad.append(RejectRow(row_number, result.uen, "duplicate_uen", raw_text(raw)))
                self.counts.reasons["duplicate_uen"] += 1
            else:
                self.seen_uens.add(key)
                self.good.append(result.as_tuple())
        else:
            assert isinstance(result, Reject)
            self.bad.append(RejectRow(row_number, result.uen, result.reason, result.raw_text))
            self.counts.reasons[result.reason.split(":")[0]] += 1
        if len(self.good) + len(self.bad) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.good and not self.bad:
            return
        with self.conn() as c:
            self.counts.staged += stage_rows(c, self.good, snapshot_date=self.snapshot_date, source=self.source)
            self.counts.rejected += quarantine(c, self.bad, snapshot_date=self.snapshot_date, source=self.source)
        self.good, self.bad = [], []
        if self.progress:
            self.progress(self.counts.seen, self.counts.rejected)

    def finish(self) -> LoadCounts:
        self.flush()
        self.counts.seconds = time.monotonic() - self.started
        return self.counts


def load_rows(
    rows: Iterable[tuple[int | None, Mapping[str, object]]],
    *,
    conn: ConnFactory,
    snapshot_date: date,
    source: str,
    progress: Progress | None = None,
) -> LoadCounts:
    batcher = _Batcher(conn=conn, snapshot_date=snapshot_date, source=source, progress=progress)
    for row_number, raw in rows:
        batcher.add(row_number, raw)
    return batcher.finish()


async def load_records(
    records: AsyncIterator[Mapping[str, object]],
    *,
    conn: ConnFactory,
    snapshot_date: date,
    source: str,
    progress: Progress | None = None,
) -> LoadCounts:
    batcher = _Batcher(conn=conn, snapshot_date=snapshot_date, source=source, progress=progress)
    n = 0
    async for raw in records:
        n += 1
        if n == 1:
            require_upsert_columns(raw.keys(), source=source)
        batcher.add(n, raw)
    return batcher.finish()
