"""A partition's scores at a glance: totals for metadata and a markdown table of the top leads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import psycopg

PREVIEW_ROWS = 10
MAX_CELL_CHARS = 120
BUCKETS = ("high", "medium", "low")

SUMMARY_SQL = """
SELECT bucket, rationale_source, count(*), sum(score)
FROM lead_scores WHERE tenant_id = %s AND run_date = %s GROUP BY 1, 2
"""
TOP_SQL = """
SELECT c.name, c.uen, s.score, s.bucket, s.rationale_source, s.rationale
FROM lead_scores s JOIN companies c ON c.company_id = s.company_id
WHERE s.tenant_id = %s AND s.run_date = %s
ORDER BY s.score DESC, s.company_id DESC LIMIT %s
"""


@dataclass(frozen=True)
class LeadRow:
    name: str
    uen: str
    score: float
    bucket: str
    source: str
    rationale: str


@dataclass
class ScoreSummary:
    """How many leads were scored, their buckets, average score and where rationales came from."""

    count: int = 0
    total: float = 0.0
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    sources: dict[str, int] = field(default_factory=dict)

    def add(self, *, bucket: str, source: str, score: float, n: int = 1) -> None:
        self.count += n
        self.total += score
        self.buckets[bucket] = self.buckets.get(bucket, 0) + n
        self.sources[source] = self.sources.get(source, 0) + n

    @property
    def average(self) -> float:
        return round(self.total / self.count, 4) if self.count else 0.0


def day_summary(conn: psycopg.Connection, *, tenant_id: str, day: date) -> ScoreSummary:
    summary = ScoreSummary()
    for bucket, source, n, total in conn.execute(SUMMARY_SQL, (tenant_id, day)).fetchall():
        summary.add(bucket=str(bucket), source=str(source), score=float(total or 0.0), n=int(n))
    return summary


def top_leads(conn: psycopg.Connection, *, tenant_id: str, day: date, limit: int = PREVIEW_ROWS) -> list[LeadRow]:
    rows = conn.execute(TOP_SQL, (tenant_id, day, limit)).fetchall()
    return [LeadRow(str(n), str(u), float(s), str(b), str(src), str(r)) for n, u, s, b, src, r in rows]


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def _cell(value: str) -> str:
    """VALUE as the text of one markdown cell, whatever it holds.

    Company names come from the registry and rationales from an LLM: a line break or a pipe would end
    the cell, and `[x](url)`, `![x](img)`, `<b>` or `&lt;` would render as a link, an image, HTML or an
    entity in Dagster's UI. CommonMark renders any backslash-escaped ASCII punctuation as itself.
    """
    text = " ".join(value.split())
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"  # cut before escaping, so no escape is cut in half
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown_table(rows: Sequence[LeadRow]) -> str:
    """A markdown table of ROWS, best first; a one-line note when there are none."""
    if not rows:
        return "_No leads scored for this partition._"
    lines = ["| # | Company | UEN | Score | Bucket | Rationale (source) |", "|---|---|---|---|---|---|"]
    for rank, r in enumerate(rows, start=1):
        lines.append(
            f"| {rank} | {_cell(r.name)} | {_cell(r.uen)} | {r.score:.2f} | {r.bucket} | "
            f"{_cell(r.rationale)} ({r.source}) |"
        )
    return "\n".join(lines)
