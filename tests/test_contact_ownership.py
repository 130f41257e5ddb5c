"""Contacts belong to the company whose evidence shows them (lead_emails as the association).

Real: Postgres (companies seeded as the owner; contacts saved and read as the application role,
through the same store functions the contacts stage and the scoring inputs use). Nothing is
simulated: no vendor is called (a Lusha answer is given as the candidates it would produce).
"""

from __future__ import annotations

import psycopg

from leadgen_core.db.pool import Database
from leadgen_core.enrich.contacts_store import Candidate, company_emails, save_candidates
from leadgen_core.leads.inputs import load_contacts
from tests.conftest import add_tenant
from tests.test_scoring_stage import DAY, TENANT


def company(owner: psycopg.Connection, uen: str, domain: str | None) -> int:
    row = owner.execute(
        "INSERT INTO companies (uen, name, website, website_domain, content_hash, first_seen, last_seen) "
        "VALUES (%s, %s, %s, %s, '\\x00', %s, %s) RETURNING company_id",
        (uen, f"Company {uen}", f"https://{domain}" if domain else None, domain, DAY, DAY),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_two_sites_listing_the_same_address_both_keep_it_and_its_own_domain_owns_it(
    app_db: Database, owner_conn: psycopg.Connection
) -> None:
    add_tenant(owner_conn, TENANT)
    directory = company(owner_conn, "201900001A", "directory.example")  # lists everyone's addresses
    acme = company(owner_conn, "201900002B", "acme.sg")
    bought = company(owner_conn, "201900003C", None)  # no website: its contact comes from Lusha

    ceo = "jane.lim@mail.acme.sg"  # at a subdomain of Acme's own domain
    with app_db.global_transaction() as conn:
        # The directory's page is crawled first and shows Acme's CEO, and the address Lusha will sell.
        first = save_candidates(
            conn, company_id=directory, own_domain="directory.example",
            candidates=[Candidate(ceo, "Jane Lim", "CEO", "crawl", evidence_url="https://directory.example/acme"),
                        Candidate("sales@bought.example", None, None, "crawl")],
        )  # fmt: skip
        assert first == [ceo, "sales@bought.example"]
        # Acme's own site shows the same address: it is Acme's as well, and Acme now owns the person.
        assert save_candidates(
            conn, company_id=acme, own_domain="acme.sg",
            candidates=[Candidate(ceo, "Jane Lim", None, "crawl", evidence_url="https://acme.sg/team")],
        ) == [ceo]  # fmt: skip
        # A paid Lusha contact is kept for the company it was bought for.
        assert save_candidates(
            conn, company_id=bought, candidates=[Candidate("sales@bought.example", "Sam Ho", "Sales Director", "lusha")]
        ) == ["sales@bought.example"]
        assert company_emails(conn, company_id=acme) == [ceo]
        assert company_emails(conn, company_id=bought) == ["sales@bought.example"]
        assert company_emails(conn, company_id=directory) == [ceo, "sales@bought.example"]

    links = owner_conn.execute(
        "SELECT email, company_id, source, evidence_url, domain_match FROM lead_emails ORDER BY email, company_id"
    ).fetchall()
    assert links == [
        (ceo, directory, "crawl", "https://directory.example/acme", False),
        (ceo, acme, "crawl", "https://acme.sg/team", True),
        ("sales@bought.example", directory, "crawl", None, False),
        ("sales@bought.example", bought, "lusha", None, False),
    ]
    (owner,) = owner_conn.execute("SELECT company_id FROM contacts WHERE email = %s", (ceo,)).fetchone()  # type: ignore[misc]
    assert owner == acme  # the company at the address's own domain

    # A later page elsewhere does not take the person back from the company at its own domain.
    with app_db.global_transaction() as conn:
        save_candidates(
            conn, company_id=directory, own_domain="acme.sg", candidates=[Candidate(ceo, None, None, "crawl")]
        )
    (owner,) = owner_conn.execute("SELECT company_id FROM contacts WHERE email = %s", (ceo,)).fetchone()  # type: ignore[misc]
    assert owner == acme

    # Scoring (and through it Odoo and the export) sees the person at every company that shows it.
    with app_db.tenant_transaction(TENANT) as conn:
        facts = load_contacts(conn, tenant_id=TENANT, company_ids=[directory, acme, bought])
    assert [(f.email, f.name, f.title) for f in facts[acme]] == [(ceo, "Jane Lim", "CEO")]
    assert ("sales@bought.example", "Sam Ho") in {(f.email, f.name) for f in facts[bought]}
    assert {f.email for f in facts[directory]} == {ceo, "sales@bought.example"}
