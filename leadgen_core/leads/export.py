"""Exporting a tenant's scores a page at a time, with keyset pagination, as CSV or JSON.

Rows come best first (score DESC, company_id DESC, then run_date DESC across dates). A page ends
with an opaque cursor, base64 of the last row's (run_date, score, company_id); the next page
starts strictly after it. No OFFSET: a page costs the same wherever it is, and rows inserted
or rescored while a client pages neither shift nor repeat the rows it has yet to read. Suppressed
companies (`leadgen_core.suppression`) are left out, and the contact email shown is the
best deliverable, unsuppressed address.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import IO, Any

import psycopg

from leadgen_core.errors import ConfigError
from leadgen_core.suppression import COMPANY_SUPPRESSED_SQL, address_suppressed_sql

MAX_LIMIT = 10_000
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CURSOR_VERSION = 1
MAX_CURSOR_CHARS = 200  # a real cursor is about 60
MAX_BIGINT = 2**63 - 1


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a cursor value")


CSV_FIELDS = ("run_date", "company_id", "uen", "name", "website", "score", "bucket", "email", "rationale",
              "rationale_source", "contributions")  # fmt: skip

# A deliverable address ranks by its verification; an unverified one sits between unknown and invalid.
SELECT_SQL = f"""
SELECT s.run_date, s.score, s.company_id, c.uen, c.name, c.website, s.bucket, s.rationale, s.rationale_source,
       s.contributions, best.email
FROM lead_scores s
JOIN companies c ON c.company_id = s.company_id
LEFT JOIN LATERAL (
    SELECT le.email FROM lead_emails le
    LEFT JOIN email_verification_cache v ON v.email = le.email
    WHERE le.company_id = s.company_id
      AND coalesce(v.status, 'unverified') NOT IN ('invalid', 'do_not_mail', 'spamtrap', 'abuse')
      AND NOT {address_suppressed_sql("le.email")}
    ORDER BY CASE coalesce(v.status, 'unverified') WHEN 'valid' THEN 0 WHEN 'catch-all' THEN 1
             WHEN 'unknown' THEN 2 ELSE 3 END, le.domain_match DESC, le.email
    LIMIT 1
) best ON true
WHERE s.tenant_id = %(tenant)s AND NOT {COMPANY_SUPPRESSED_SQL}
"""  # noqa: S608 - constant fragments only
# Each variant's keyset condition follows an index's column order: idx_lead_scores_keyset (002) for one
# date, idx_lead_scores_export (006) across dates, where a page is one index range scan however deep.
DAY_SQL = " AND s.run_date = %(day)s"
# Each company once, at its latest scored date (idx_lead_scores_company finds that date per company).
LATEST_SQL = (
    " AND s.run_date = (SELECT max(l.run_date) FROM lead_scores l"
    " WHERE l.tenant_id = s.tenant_id AND l.company_id = s.company_id)"
)
DAY_AFTER_SQL = " AND (s.score, s.company_id) < (%(after_score)s, %(after_company)s)"
ALL_AFTER_SQL = " AND (s.score, s.company_id, s.run_date) < (%(after_score)s, %(after_company)s, %(after_day)s)"
DAY_ORDER_SQL = " ORDER BY s.score DESC, s.company_id DESC LIMIT %(limit)s"  # run_date is fixed
ALL_ORDER_SQL = " ORDER BY s.score DESC, s.company_id DESC, s.run_date DESC LIMIT %(limit)s"


def export_sql(*, by_day: bool, after: bool, latest: bool = False) -> str:
    """The page query for one date, each company's latest date, or all dates; first page or after a cursor.
    One row per company (a date, or the latest) pages by (score, company_id); all dates add run_date."""
    if by_day or latest:
        return SELECT_SQL + (DAY_SQL if by_day else LATEST_SQL) + (DAY_AFTER_SQL if after else "") + DAY_ORDER_SQL
    return SELECT_SQL + (ALL_AFTER_SQL if after else "") + ALL_ORDER_SQL


@dataclass(frozen=True)
class ExportRow:
    run_date: date
    company_id: int
    uen: str
    name: str
    website: str | None
    score: float
    bucket: str
    email: str | None
    rationale: str
    rationale_source: str
    contributions: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_date"] = self.run_date.isoformat()
        return data


@dataclass(frozen=True)
class Cursor:
    run_date: date
    score: float
    company_id: int

    def encode(self) -> str:
        raw = json.dumps([CURSOR_VERSION, self.run_date.isoformat(), self.score, self.company_id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor TOKEN stands for; ConfigError when it is not one of ours."""
        try:
            if len(token) > MAX_CURSOR_CHARS:
                raise ValueError("cursor too long")
            padded = token.strip() + "=" * (-len(token.strip()) % 4)
            version, day, score, company = json.loads(
                base64.urlsafe_b64decode(padded.encode()), parse_constant=_no_constant
            )
            if version != CURSOR_VERSION or isinstance(score, bool) or not isinstance(company, int):
                raise ValueError("unknown cursor version")
            # A score is in [0, 1] and a company id a positive bigint: anything else (Infinity,
            # NaN, 1e400, 10**30) was never printed by a page and would only fail in SQL.
            if not (isinstance(score, (int, float)) and math.isfinite(score) and 0 <= score <= 1):
                raise ValueError("score out of range")
            if not 0 < company <= MAX_BIGINT:
                raise ValueError("company id out of range")
            return cls(date.fromisoformat(day), float(score), company)
        except (ValueError, TypeError, binascii.Error, UnicodeError, RecursionError):
            raise ConfigError(f"invalid cursor {token[:40]!r}: pass the value a previous page printed") from None


def export_scores(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    day: date | None,
    after: str | None,
    limit: int,
    latest: bool = False,
) -> tuple[list[ExportRow], str | None]:
    """One page of the tenant's scores (DAY; with no DAY, every date, or each company once at its
    latest date when LATEST) after the cursor AFTER.

    Returns the rows and the cursor of the next page, None when this page is the last.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    cursor = Cursor.decode(after) if after else None
    params = {
        "tenant": tenant_id,
        "day": day,
        "after_day": cursor.run_date if cursor else None,
        "after_score": cursor.score if cursor else None,
        "after_company": cursor.company_id if cursor else None,
        # one row more than asked says whether another page exists without a count(*)
        "limit": limit + 1,
    }
    sql = export_sql(by_day=day is not None, after=cursor is not None, latest=latest and day is None)
    fetched = conn.execute(sql, params).fetchall()
    rows = [
        ExportRow(run_date=r[0], score=float(r[1]), company_id=int(r[2]), uen=r[3], name=r[4], website=r[5],
                  bucket=r[6], rationale=r[7], rationale_source=r[8], contributions=dict(r[9] or {}), email=r[10])
        for r in fetched[:limit]
    ]  # fmt: skip
    if len(fetched) <= limit:
        return rows, None
    last = rows[-1]
    return rows, Cursor(last.run_date, last.score, last.company_id).encode()


def _safe_cell(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula; names and rationales are free text.
    if isinstance(value, str) and value[:1] in FORMULA_PREFIXES:
        return "'" + value
    return value


def write_csv(rows: Sequence[ExportRow], out: IO[str], *, header: bool = True) -> None:
    """ROWS as CSV (contributions as a JSON object in one cell, formula-like text defused)."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        data = {k: _safe_cell(v) for k, v in row.as_json().items()}
        data["contributions"] = json.dumps(row.contributions, sort_keys=True)
        writer.writerow(data)


def write_json(rows: Sequence[ExportRow], out: IO[str]) -> None:
    """ROWS as a JSON array of objects."""
    json.dump([r.as_json() for r in rows], out, ensure_ascii=False, indent=1)
    out.write("\n")
