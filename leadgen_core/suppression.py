"""The tenant's suppression rule, in one place, for SQL and for Python.

A tenant suppresses addresses (`kind = 'email'`) and domains (`kind = 'domain'`) in
`suppression_emails`. A domain covers itself and every subdomain: suppressing `acme.sg` covers
`ops@acme.sg`, `ops@mail.acme.sg` and a company whose website is `shop.acme.sg`.

- An **address** is suppressed when it is listed, or its domain is covered.
- A **company** is suppressed when its website domain is covered, or one of its known addresses
  is listed by value. A third party's address at a suppressed domain (a consultant's
  `dan@partner.example`) drops only that address, not the company that lists it.

Every stage asks the same fragments: target selection, scoring inputs, verification, the export
and the Odoo sync (`address_suppressed_sql`, `COMPANY_SUPPRESSED_SQL`), and the contacts stage's
Python filter (`Suppression.blocks`), whose agreement with the SQL is tested case by case. The
fragments bind `%(tenant)s`; the statement that embeds them passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

SUPPRESSION_SQL = "SELECT value, kind FROM suppression_emails WHERE tenant_id = %s"


def _domain_covered_sql(domain: str) -> str:
    # leadgen_domain_suffixes (sql/013) lists the domain and its parents: an index probe per level.
    return f"(se.kind = 'domain' AND se.value = ANY(leadgen_domain_suffixes({domain})))"


def address_suppressed_sql(column: str) -> str:
    """SQL true when the lower-case address in COLUMN is listed or its domain is covered."""
    return f"""({column} IS NOT NULL AND EXISTS (
        SELECT 1 FROM suppression_emails se WHERE se.tenant_id = %(tenant)s
          AND ((se.kind = 'email' AND se.value = {column})
               OR {_domain_covered_sql(f"split_part({column}, '@', 2)")})))"""  # noqa: S608 - COLUMN is a caller's constant


def domain_suppressed_sql(column: str) -> str:
    """SQL true when the domain in COLUMN is a suppressed domain or one of its subdomains."""
    return f"""({column} IS NOT NULL AND EXISTS (
        SELECT 1 FROM suppression_emails se WHERE se.tenant_id = %(tenant)s
          AND {_domain_covered_sql(f"lower({column})")}))"""  # noqa: S608 - COLUMN is a caller's constant


# The company `c` is suppressed (see the module docstring); %(tenant)s is bound by the statement.
COMPANY_SUPPRESSED_SQL = f"""(
    {domain_suppressed_sql("c.website_domain")}
    OR EXISTS (SELECT 1 FROM lead_emails le JOIN suppression_emails se
                 ON se.tenant_id = %(tenant)s AND se.kind = 'email' AND se.value = le.email
               WHERE le.company_id = c.company_id)
    OR EXISTS (SELECT 1 FROM contacts k JOIN suppression_emails se
                 ON se.tenant_id = %(tenant)s AND se.kind = 'email' AND se.value = lower(k.email)
               WHERE k.company_id = c.company_id)
)"""  # noqa: S608 - constant fragments only


def domain_suffixes(domain: str) -> list[str]:
    """The domain and every parent domain, as sql/013's leadgen_domain_suffixes gives them."""
    parts = domain.lower().split(".")
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i]]


def domain_covers(domain: str, other: str) -> bool:
    """OTHER is DOMAIN or one of its subdomains (the rule's domain test, for one pair)."""
    return domain.lower() in domain_suffixes(other)


@dataclass(frozen=True)
class Suppression:
    """A tenant's list in memory, for filtering candidates before they are stored."""

    emails: frozenset[str]
    domains: frozenset[str]

    def blocks(self, email: str) -> bool:
        """The address rule of `address_suppressed_sql`, for a lower-case address."""
        if email in self.emails:
            return True
        # split_part(address, '@', 2) in SQL: the text after the first "@".
        domain = email.split("@")[1] if "@" in email else ""
        return any(d in self.domains for d in domain_suffixes(domain))


def load_suppression(conn: psycopg.Connection, *, tenant_id: str) -> Suppression:
    rows = conn.execute(SUPPRESSION_SQL, (tenant_id,)).fetchall()
    return Suppression(
        emails=frozenset(str(v) for v, k in rows if k == "email"),
        domains=frozenset(str(v) for v, k in rows if k == "domain"),
    )


ADD_SUPPRESSION_SQL = (
    "INSERT INTO suppression_emails (tenant_id, value, kind, reason) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (tenant_id, value) DO UPDATE SET kind = EXCLUDED.kind, "
    "reason = coalesce(EXCLUDED.reason, suppression_emails.reason)"
)
LIST_SUPPRESSIONS_SQL = (
    "SELECT value, kind, coalesce(reason, ''), created_at FROM suppression_emails "
    "WHERE tenant_id = %s ORDER BY kind, value"
)
REMOVE_SUPPRESSION_SQL = "DELETE FROM suppression_emails WHERE tenant_id = %s AND value = %s"


def add_suppression(conn: psycopg.Connection, *, tenant_id: str, value: str, kind: str, reason: str | None) -> None:
    """Suppress VALUE (an address or a domain, already normalised) for the tenant; a repeat updates it."""
    conn.execute(ADD_SUPPRESSION_SQL, (tenant_id, value, kind, reason))


def list_suppressions(conn: psycopg.Connection, *, tenant_id: str) -> list[tuple[Any, ...]]:
    """(value, kind, reason, created_at) of each of the tenant's suppressions, by kind and value."""
    return conn.execute(LIST_SUPPRESSIONS_SQL, (tenant_id,)).fetchall()


def remove_suppression(conn: psycopg.Connection, *, tenant_id: str, value: str) -> bool:
    """Lift the suppression of VALUE; False when there was none."""
    return conn.execute(REMOVE_SUPPRESSION_SQL, (tenant_id, value)).rowcount > 0
