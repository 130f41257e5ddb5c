"""The SQL of contacts, lead emails, suppression and email verification.

Contacts are global people, one row per address (`lower(email)` is unique). `lead_emails` is the
address <-> company association (sql/014): every company whose evidence shows an address gets its
own row, with the source, the page it was seen on, and whether the address is at the company's
own domain. So an address may belong to several companies, no website can take another
company's address away from it, and a paid Lusha contact is always kept for the company it was
bought for. The person's primary company (`contacts.company_id`) is the first finder until a
company at the address's own domain shows it: that company takes the person over. People known
only by name are deduplicated per company under an advisory lock, so two tenants working the
same company at once do not insert them twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from leadgen_core.suppression import address_suppressed_sql, domain_covers

COMPANY_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('leadgen:contacts:' || %s::text, 0))"
UPSERT_EMAIL_CONTACT_SQL = """
INSERT INTO contacts (company_id, full_name, title, email, source)
VALUES (%(company)s, %(name)s, %(title)s, %(email)s, %(source)s)
ON CONFLICT ((lower(email))) WHERE email IS NOT NULL DO UPDATE SET
    full_name = coalesce(contacts.full_name, EXCLUDED.full_name),
    title = coalesce(contacts.title, EXCLUDED.title),
    updated_at = now()
WHERE (contacts.full_name IS NULL AND EXCLUDED.full_name IS NOT NULL)
   OR (contacts.title IS NULL AND EXCLUDED.title IS NOT NULL)
RETURNING contact_id, company_id
"""
CONTACT_BY_EMAIL_SQL = "SELECT contact_id, company_id FROM contacts WHERE lower(email) = %s"
INSERT_PERSON_SQL = """
INSERT INTO contacts (company_id, full_name, title, source)
SELECT %(company)s, %(name)s, %(title)s, %(source)s
WHERE NOT EXISTS (
    SELECT 1 FROM contacts WHERE company_id = %(company)s AND lower(full_name) = lower(%(name)s)
)
"""
LEAD_EMAIL_SQL = """
INSERT INTO lead_emails (email, company_id, contact_id, source, evidence_url, domain_match)
VALUES (%(email)s, %(company)s, %(contact)s, %(source)s, %(url)s, %(match)s)
ON CONFLICT (email, company_id) DO NOTHING
"""
# The person moves to a company at the address's own domain, unless its primary company is one too.
CLAIM_CONTACT_SQL = """
UPDATE contacts k SET company_id = %(company)s, updated_at = now()
WHERE k.contact_id = %(contact)s AND k.company_id <> %(company)s
  AND NOT EXISTS (SELECT 1 FROM lead_emails le
                  WHERE le.contact_id = k.contact_id AND le.company_id = k.company_id AND le.domain_match)
"""
# Addresses at the company's own domain first.
COMPANY_EMAILS_SQL = "SELECT email FROM lead_emails WHERE company_id = %s ORDER BY domain_match DESC, email"
EMAILS_TO_VERIFY_SQL = f"""
SELECT le.company_id, le.email, v.status,
       v.verified_at > now() - make_interval(days => %(ttl_days)s)
           AND (v.status <> 'unknown' OR v.verified_at > now() - make_interval(hours => %(unknown_hours)s)),
       {address_suppressed_sql("le.email")}
FROM lead_emails le
LEFT JOIN email_verification_cache v ON v.email = le.email
WHERE le.company_id = ANY(%(companies)s)
ORDER BY le.company_id, le.email
"""  # noqa: S608 - a constant fragment, values are bound


@dataclass(frozen=True)
class Candidate:
    """A contact as a source saw it; `email` is lower-case and syntactically valid, or None."""

    email: str | None
    name: str | None
    title: str | None
    source: str  # crawl | extraction | lusha
    evidence_url: str | None = None  # the page (or site) that showed it, when a page did


def company_emails(conn: psycopg.Connection, *, company_id: int) -> list[str]:
    return [str(r[0]) for r in conn.execute(COMPANY_EMAILS_SQL, (company_id,)).fetchall()]


def at_domain(email: str, domain: str | None) -> bool:
    """The address is at DOMAIN or one of its subdomains."""
    return bool(domain) and domain_covers(domain or "", email.split("@")[-1])


def save_candidates(
    conn: psycopg.Connection, *, company_id: int, candidates: Iterable[Candidate], own_domain: str | None = None
) -> list[str]:
    """Upsert contacts and associate every address with this company; returns the addresses.

    OWN_DOMAIN is the company's website domain: an address there is marked a domain match, and
    the company becomes the person's primary company (see the module docstring).
    """
    conn.execute(COMPANY_LOCK_SQL, (company_id,))
    ours: list[str] = []
    for c in candidates:
        if c.email is None:
            if c.name:
                params = {"company": company_id, "name": c.name, "title": c.title, "source": c.source}
                conn.execute(INSERT_PERSON_SQL, params)
            continue
        params = {"company": company_id, "name": c.name, "title": c.title, "email": c.email, "source": c.source}
        row = conn.execute(UPSERT_EMAIL_CONTACT_SQL, params).fetchone()
        if row is None:  # present already and nothing to add
            row = conn.execute(CONTACT_BY_EMAIL_SQL, (c.email,)).fetchone()
        if row is None:
            continue
        contact_id, match = int(row[0]), at_domain(c.email, own_domain)
        if match and int(row[1]) != company_id:
            conn.execute(CLAIM_CONTACT_SQL, {"contact": contact_id, "company": company_id})
        conn.execute(
            LEAD_EMAIL_SQL,
            {"email": c.email, "company": company_id, "contact": contact_id, "source": c.source,
             "url": c.evidence_url, "match": match},
        )  # fmt: skip
        ours.append(c.email)
    return ours


@dataclass(frozen=True)
class EmailState:
    company_id: int
    email: str
    status: str | None
    fresh: bool
    suppressed: bool = False  # by the tenant's rule (leadgen_core.suppression)


def emails_to_verify(
    conn: psycopg.Connection, *, tenant_id: str, company_ids: list[int], ttl_days: int, unknown_hours: int
) -> list[EmailState]:
    """The companies' addresses with freshness and suppression; CONN must be in TENANT_ID's transaction."""
    params = {"tenant": tenant_id, "companies": company_ids, "ttl_days": ttl_days, "unknown_hours": unknown_hours}
    rows = conn.execute(EMAILS_TO_VERIFY_SQL, params).fetchall()
    return [EmailState(int(r[0]), str(r[1]), r[2], bool(r[3]), bool(r[4])) for r in rows]
