"""Resolving ICP industry terms to SSIC 2025 sub-class codes through `ssic_ref`.

A term that matches a section, division, group or class *title* brings every sub-class under it
(for example "technology" brings division 62). A term that only appears in a sub-class's title,
definition or examples brings that sub-class alone: matching definitions of higher levels is too
loose (section L's definition mentions "technology").
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from leadgen_core.icp.rules import IcpRules

RESOLVE_TERM_SQL = """
WITH RECURSIVE hit AS (
    SELECT code, level FROM ssic_ref
    WHERE to_tsvector('english', title) @@ plainto_tsquery('english', %(term)s)
       OR (level = 'subclass' AND search @@ plainto_tsquery('english', %(term)s))
),
tree AS (
    SELECT code, level FROM hit
    UNION
    SELECT s.code, s.level FROM ssic_ref s JOIN tree t ON s.parent = t.code
)
SELECT DISTINCT code FROM tree WHERE level = 'subclass' ORDER BY code
"""

PREFIX_SQL = "SELECT code FROM ssic_ref WHERE level = 'subclass' AND code LIKE %s || '%%' ORDER BY code"


@dataclass(frozen=True)
class ResolvedIndustries:
    codes: tuple[str, ...]
    by_term: dict[str, int]  # term or prefix -> number of sub-classes it brought
    unmatched: tuple[str, ...]


def resolve_industries(conn: psycopg.Connection, rules: IcpRules) -> ResolvedIndustries:
    codes: set[str] = set()
    by_term: dict[str, int] = {}
    unmatched: list[str] = []
    for term in rules.free_terms():
        found = [r[0] for r in conn.execute(RESOLVE_TERM_SQL, {"term": term}).fetchall()]
        by_term[term] = len(found)
        if not found:
            unmatched.append(term)
        codes.update(found)
    for prefix in rules.code_prefixes():
        found = [r[0] for r in conn.execute(PREFIX_SQL, (prefix,)).fetchall()]
        by_term[prefix] = len(found)
        if not found:
            unmatched.append(prefix)
        codes.update(found)
    return ResolvedIndustries(tuple(sorted(codes)), by_term, tuple(unmatched))
