"""The evidence about the night's targets, read in set-based queries, as scoring and sync need it.

Three queries serve any number of companies: the companies with their ICP match, latest crawl
snapshot and latest extraction (as of the night's date); every known contact and mailbox with its
verification and suppression state; the tenant's ICP rules. Suppression is the tenant's one rule
(`leadgen_core.suppression`: an address by value or by its domain and parent domains, a company
by its website domain or a listed address). Suppressed addresses never reach the score, Odoo or
an export.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import psycopg

from leadgen_core.icp.rules import IcpRules, parse_rules
from leadgen_core.scoring import Contact, ScoreWeights, ScoringInputs, parse_weights
from leadgen_core.scoring.features import ContactSource, IcpRule, VerificationTier
from leadgen_core.suppression import COMPANY_SUPPRESSED_SQL, address_suppressed_sql

NO_UPPER_BOUND = 10**9
YEAR_FLOOR, YEAR_CEILING = 1800, 2200  # the bounds ScoringInputs accepts
MAX_DETAIL_CHARS = 200
# icp_candidates.matched_by -> the ScoringInputs rule; a secondary-SSIC match has no rule of its
# own, so it scores as an ICP match of unknown rule (0.6), below an exact primary match (1.0).
MATCH_RULES: dict[str, IcpRule | None] = {"primary_ssic": "ssic_exact", "secondary_ssic": None}
CONTACT_SOURCES: frozenset[str] = frozenset({"crawl", "extraction", "lusha"})
TIERS: frozenset[str] = frozenset({"valid", "catch-all", "unknown", "invalid", "do_not_mail", "spamtrap", "abuse"})

COMPANIES_SQL = f"""
SELECT c.company_id, c.uen, c.name, c.website, c.industry_code, c.secondary_ssic_code, c.industry_norm,
       c.address, c.employees_est, c.incorporation_year, ic.matched_by,
       s.status, s.pages_crawled, s.text_chars, s.social_links, s.phone, e.facts,
       {COMPANY_SUPPRESSED_SQL} AS suppressed
FROM unnest(%(ids)s::bigint[]) AS t(company_id)
JOIN companies c ON c.company_id = t.company_id
LEFT JOIN icp_candidates ic
  ON ic.tenant_id = %(tenant)s AND ic.run_date = %(day)s AND ic.company_id = c.company_id
LEFT JOIN LATERAL (
    SELECT ws.status, ws.text_chars, cardinality(ws.social_links) AS social_links, ws.phones[1] AS phone,
           CASE WHEN jsonb_typeof(ws.pages) = 'array' THEN jsonb_array_length(ws.pages) ELSE 0 END AS pages_crawled
    FROM company_web_snapshots ws
    WHERE ws.company_id = c.company_id AND ws.crawled_on <= %(day)s
    ORDER BY ws.crawled_on DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT x.facts FROM company_extractions x
    WHERE x.company_id = c.company_id AND x.extracted_on <= %(day)s AND x.facts IS NOT NULL
    ORDER BY x.extracted_on DESC LIMIT 1
) e ON true
"""  # noqa: S608 - constant fragments only

# People first (contacts), then mailboxes known only as lead emails (info@, sales@).
CONTACTS_SQL = f"""
SELECT company_id, email, full_name, title, phone, source, status, free_email, suppressed, kind = 0 FROM (
    SELECT o.company_id, lower(k.email) AS email, k.full_name, k.title, k.phone, k.source, v.status,
           v.free_email, {address_suppressed_sql("lower(k.email)")} AS suppressed, 0 AS kind, k.contact_id AS ord
    FROM (  -- a person belongs to their primary company and to every company associated with them
        SELECT k0.contact_id, k0.company_id FROM contacts k0 WHERE k0.company_id = ANY(%(ids)s)
        UNION
        SELECT a.contact_id, a.company_id FROM lead_emails a
        WHERE a.company_id = ANY(%(ids)s) AND a.contact_id IS NOT NULL
    ) o
    JOIN contacts k ON k.contact_id = o.contact_id
    LEFT JOIN email_verification_cache v ON v.email = lower(k.email)
    UNION ALL
    SELECT le.company_id, le.email, NULL, NULL, NULL, le.source, v.status, v.free_email,
           {address_suppressed_sql("le.email")}, 1, 0
    FROM lead_emails le
    LEFT JOIN email_verification_cache v ON v.email = le.email
    WHERE le.company_id = ANY(%(ids)s)
      AND NOT EXISTS (SELECT 1 FROM contacts k2 WHERE lower(k2.email) = le.email)
) known
ORDER BY company_id, kind, ord, email
"""  # noqa: S608 - constant fragments only

RULES_SQL = "SELECT payload FROM icp_rules WHERE tenant_id = %s AND name = 'default'"


@dataclass(frozen=True)
class ContactFact:
    """A person (`contacts`) or a mailbox known only as a lead email (info@, sales@), with what the
    verifier and the tenant said about it."""

    email: str | None
    name: str | None
    title: str | None
    phone: str | None
    source: str
    verification: str | None
    freemail: bool | None
    suppressed: bool
    person: bool = True


@dataclass(frozen=True)
class CompanyEvidence:
    """One target: identity, suppression, the scoring inputs and the raw contacts."""

    company_id: int
    uen: str
    name: str
    website: str | None
    phone: str | None
    suppressed: bool
    inputs: ScoringInputs
    contacts: tuple[ContactFact, ...]


@dataclass(frozen=True)
class TenantScoring:
    """What the tenant's ICP rules say about scoring: weights and the size and age windows."""

    weights: ScoreWeights
    employee_range: tuple[int, int] | None
    year_range: tuple[int, int] | None


def tenant_scoring(conn: psycopg.Connection, *, tenant_id: str) -> TenantScoring:
    """Weights from icp_rules.payload.weights (else DEFAULT_WEIGHTS) and the ICP ranges.

    Raises ConfigError when the stored rules or weights are invalid (the message names the field).
    """
    row = conn.execute(RULES_SQL, (tenant_id,)).fetchone()
    if row is None:
        return TenantScoring(ScoreWeights(), None, None)
    payload = row[0] if isinstance(row[0], dict) else {}
    rules: IcpRules = parse_rules(payload)
    emp = rules.employee_range
    years = rules.incorporation_year
    return TenantScoring(
        weights=parse_weights(rules.weights),
        employee_range=(emp.min or 0, emp.max if emp.max is not None else NO_UPPER_BOUND) if emp else None,
        year_range=(
            max(YEAR_FLOOR, years.min or YEAR_FLOOR),
            min(YEAR_CEILING, years.max if years.max is not None else YEAR_CEILING),
        )
        if years
        else None,
    )


def _text(facts: Mapping[str, Any], key: str) -> bool:
    value = facts.get(key)
    return isinstance(value, str) and bool(value.strip())


def _source(raw: str | None) -> ContactSource:
    # Tavily-found addresses are web finds like a crawl's; anything unknown counts as crawl too.
    return cast(ContactSource, raw) if raw in CONTACT_SOURCES else "crawl"


def _scoring_contact(fact: ContactFact) -> Contact:
    tier = cast(VerificationTier, fact.verification) if fact.verification in TIERS else None
    # A suppressed address is not a way to reach the company: the person still counts for seniority.
    email = None if fact.suppressed else fact.email
    return Contact(
        email=email, title=fact.title, source=_source(fact.source), verification=tier, freemail=fact.freemail
    )


def load_contacts(
    conn: psycopg.Connection, *, tenant_id: str, company_ids: Sequence[int]
) -> dict[int, list[ContactFact]]:
    """Every contact and lead email of the companies, people first, with suppression flags."""
    found: dict[int, list[ContactFact]] = {}
    rows = conn.execute(CONTACTS_SQL, {"tenant": tenant_id, "ids": list(company_ids)}).fetchall()
    for company_id, email, name, title, phone, source, status, free, suppressed, person in rows:
        fact = ContactFact(
            email=email,
            name=name,
            title=title,
            phone=phone,
            source=str(source),
            verification=status,
            freemail=free,
            suppressed=bool(suppressed),
            person=bool(person),
        )
        found.setdefault(int(company_id), []).append(fact)
    return found


def load_evidence(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    day: date,
    company_ids: Sequence[int],
    scoring: TenantScoring,
) -> dict[int, CompanyEvidence]:
    """Evidence per company id, as of DAY; ids that name no company are left out."""
    if not company_ids:
        return {}
    contacts = load_contacts(conn, tenant_id=tenant_id, company_ids=company_ids)
    params = {"tenant": tenant_id, "day": day, "ids": list(company_ids)}
    evidence: dict[int, CompanyEvidence] = {}
    for row in conn.execute(COMPANIES_SQL, params).fetchall():
        (
            cid,
            uen,
            name,
            website,
            code,
            secondary,
            industry_norm,
            address,
            employees,
            year,
            matched_by,
            crawl_status,
            pages,
            text_chars,
            social,
            phone,
            facts,
            suppressed,
        ) = row
        facts = facts if isinstance(facts, dict) else {}
        people = tuple(contacts.get(int(cid), ()))
        fact_employees = facts.get("employees_est")
        if employees is None and isinstance(fact_employees, int) and fact_employees >= 0:
            employees = fact_employees
        matched = matched_by is not None
        rule = MATCH_RULES.get(str(matched_by)) if matched else None
        detail = code if rule == "ssic_exact" else secondary if matched else None
        inputs = ScoringInputs(
            icp_match=matched,
            icp_rule=rule,
            icp_detail=str(detail)[:MAX_DETAIL_CHARS] if detail else None,
            employees_est=employees,
            employee_range=scoring.employee_range,
            incorporation_year=year if year is None or YEAR_FLOOR <= year <= YEAR_CEILING else None,
            year_range=scoring.year_range,
            has_website=bool(website),
            crawl_status=crawl_status or "not_crawled",
            pages_crawled=int(pages or 0),
            text_chars=int(text_chars or 0),
            has_description=_text(facts, "description"),
            has_industry=_text(facts, "industry") or bool(industry_norm),
            has_products=isinstance(facts.get("products"), list) and bool(facts["products"]),
            has_hq=_text(facts, "hq") or bool(address),
            contacts=tuple(_scoring_contact(p) for p in people),
            social_links=int(social or 0),
        )
        evidence[int(cid)] = CompanyEvidence(
            company_id=int(cid),
            uen=str(uen),
            name=str(name),
            website=website,
            phone=phone,
            suppressed=bool(suppressed),
            inputs=inputs,
            contacts=people,
        )
    return evidence
