"""A tenant's candidate set for a date: live companies matching its ICP rules.

Runs inside the tenant's transaction. The set is replaced wholesale, so re-running a partition
gives the same rows. Each candidate carries the target priority keys (scored before, has
contacts, last seen), so the capped selection in `targets` is an index walk. The keys are taken
as of the start of the night (scores of earlier dates, contacts found before that day), so
re-materialising a partition after its night selects the same targets and pays nothing again. A company of
unknown size passes the employee range: size is learnt later by extraction and weighs in the
score's `size_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg

from leadgen_core.errors import ConfigError
from leadgen_core.icp.resolve import ResolvedIndustries, resolve_industries
from leadgen_core.icp.rules import IcpRules, parse_rules

LOAD_RULES_SQL = "SELECT payload FROM icp_rules WHERE tenant_id = %s AND name = %s"

UPSERT_RULES_SQL = """
INSERT INTO icp_rules (tenant_id, name, payload) VALUES (%s, %s, %s)
ON CONFLICT (tenant_id, name) DO UPDATE SET payload = EXCLUDED.payload, updated_at = now()
"""

DELETE_CANDIDATES_SQL = "DELETE FROM icp_candidates WHERE tenant_id = %s AND run_date = %s"

INSERT_CANDIDATES_SQL = """
INSERT INTO icp_candidates (tenant_id, run_date, company_id, matched_by, has_score, has_contacts, last_seen)
SELECT %(tenant)s, %(run_date)s, c.company_id,
       CASE WHEN c.industry_code = ANY(%(codes)s) THEN 'primary_ssic' ELSE 'secondary_ssic' END,
       EXISTS (SELECT 1 FROM lead_scores s
               WHERE s.tenant_id = %(tenant)s AND s.company_id = c.company_id AND s.run_date < %(run_date)s),
       EXISTS (SELECT 1 FROM contacts k
               WHERE k.company_id = c.company_id
                 AND k.created_at < (%(run_date)s::date)::timestamp AT TIME ZONE 'Asia/Singapore'),
       c.last_seen
FROM companies c
WHERE c.is_live
  AND (c.industry_code = ANY(%(codes)s) OR c.secondary_ssic_code = ANY(%(codes)s))
  AND (%(emp_min)s::int IS NULL OR c.employees_est IS NULL OR c.employees_est >= %(emp_min)s::int)
  AND (%(emp_max)s::int IS NULL OR c.employees_est IS NULL OR c.employees_est <= %(emp_max)s::int)
  AND (%(year_min)s::int IS NULL OR c.incorporation_year >= %(year_min)s::int)
  AND (%(year_max)s::int IS NULL OR c.incorporation_year <= %(year_max)s::int)
"""


@dataclass(frozen=True)
class CandidateResult:
    candidates: int
    resolved: ResolvedIndustries


def load_rules(conn: psycopg.Connection, tenant_id: str, *, name: str = "default") -> IcpRules:
    row = conn.execute(LOAD_RULES_SQL, (tenant_id, name)).fetchone()
    if row is None:
        raise ConfigError(f"tenant {tenant_id} has no ICP rules named {name!r}; run `leadgen icp set`")
    return parse_rules(row[0])


def save_rules(conn: psycopg.Connection, tenant_id: str, rules: IcpRules, *, name: str = "default") -> None:
    from psycopg.types.json import Jsonb

    conn.execute(UPSERT_RULES_SQL, (tenant_id, name, Jsonb(rules.model_dump(exclude_none=True))))


def refresh_candidates(conn: psycopg.Connection, *, tenant_id: str, run_date: date) -> CandidateResult:
    rules = load_rules(conn, tenant_id)
    resolved = resolve_industries(conn, rules)
    conn.execute(DELETE_CANDIDATES_SQL, (tenant_id, run_date))
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "run_date": run_date,
        "codes": list(resolved.codes),
        "emp_min": rules.employee_range.min if rules.employee_range else None,
        "emp_max": rules.employee_range.max if rules.employee_range else None,
        "year_min": rules.incorporation_year.min if rules.incorporation_year else None,
        "year_max": rules.incorporation_year.max if rules.incorporation_year else None,
    }
    cur = conn.execute(INSERT_CANDIDATES_SQL, params)
    return CandidateResult(cur.rowcount, resolved)
