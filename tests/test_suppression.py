"""The tenant's suppression rule: one rule (leadgen_core.suppression), a domain covers its subdomains, every stage.

Real: Postgres (evidence and suppressions seeded as the owner; every stage reads as the application
role under RLS), the SQL fragments each stage embeds, the contacts stage's Python filter, target
selection, scoring inputs, the verification queue, the export, and the Odoo sync over loopback
JSON-2. Simulated: Odoo (OdooSim's in-memory store is what is checked).
"""

from __future__ import annotations

import psycopg
import pytest

from leadgen_core.db.pool import Database
from leadgen_core.enrich.contacts_store import emails_to_verify
from leadgen_core.enrich.verify_stage import sendable_emails
from leadgen_core.leads.inputs import load_evidence, tenant_scoring
from leadgen_core.leads.sync_stage import run_sync_stage
from leadgen_core.night.targets import select_targets, target_ids
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.suppression import address_suppressed_sql, domain_suffixes, load_suppression
from tests.test_export import page_all
from tests.test_odoo_sync import odoo, scored_night, sim, sync_ctx  # noqa: F401 - fixtures
from tests.test_scoring_stage import DAY, TENANT, add_contact, seed_night

LISTED = [("acme.sg", "domain"), ("boss@other.example", "email")]
CASES = [
    ("ops@acme.sg", True),  # the domain itself
    ("ops@mail.acme.sg", True),  # a subdomain
    ("ops@a.b.mail.acme.sg", True),  # any depth
    ("ops@notacme.sg", False),  # a lookalike is not a subdomain
    ("ops@acme.sg.evil.example", False),  # nor is a domain that merely contains it
    ("boss@other.example", True),  # an address listed by value
    ("clerk@other.example", False),  # ... covers only itself
    ("boss@mail.other.example", False),
]


def suppress(owner: psycopg.Connection, *values: tuple[str, str]) -> None:
    for value, kind in values:
        owner.execute(
            "INSERT INTO suppression_emails (tenant_id, value, kind) VALUES (%s, %s, %s)", (TENANT, value, kind)
        )


def test_domain_suffixes_match_sql(app_db: Database) -> None:
    with app_db.global_transaction() as conn:
        for domain in ("a.b.acme.sg", "acme.sg", "sg", "Mail.ACME.sg"):
            (sql,) = conn.execute("SELECT leadgen_domain_suffixes(%s)", (domain,)).fetchone()  # type: ignore[misc]
            assert sql == domain_suffixes(domain)
    assert domain_suffixes("mail.acme.sg") == ["mail.acme.sg", "acme.sg", "sg"]


def test_python_filter_agrees_with_the_sql_rule(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    seed_night(owner_conn, n=0)
    suppress(owner_conn, *LISTED)
    probe = f"SELECT {address_suppressed_sql('a.email')} FROM (SELECT %(email)s::text AS email) a"  # noqa: S608
    with app_db.tenant_transaction(TENANT) as conn:
        rule = load_suppression(conn, tenant_id=TENANT)
        for email, expected in CASES:
            (in_sql,) = conn.execute(probe, {"tenant": TENANT, "email": email}).fetchone()  # type: ignore[misc]
            assert (in_sql, rule.blocks(email)) == (expected, expected), email


def test_target_selection_leaves_out_a_company_at_a_suppressed_parent_domain(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    first, *rest = seed_night(owner_conn, n=4)
    owner_conn.execute(
        "UPDATE companies SET website_domain = %s WHERE company_id = %s", (f"shop.{first.domain}", first.company_id)
    )
    suppress(owner_conn, (first.domain, "domain"))
    with app_db.tenant_transaction(TENANT) as conn:
        assert select_targets(conn, tenant_id=TENANT, run_date=DAY, default_cap=10, run_id="r").selected == 3
        assert set(target_ids(conn, tenant_id=TENANT, run_date=DAY)) == {s.company_id for s in rest}


def test_verification_never_queues_a_suppressed_subdomain_address(app_db: Database, owner_conn) -> None:  # type: ignore[no-untyped-def]
    _, mid, *_ = seed_night(owner_conn, n=3)
    add_contact(owner_conn, mid.company_id, name="Ann", title="CFO", email="ann@eu.partner.example", status=None)
    add_contact(owner_conn, mid.company_id, name="Cy", title="CTO", email="cy@eu.other.example", status=None)
    suppress(owner_conn, ("partner.example", "domain"))
    with app_db.tenant_transaction(TENANT) as conn:
        states = emails_to_verify(conn, tenant_id=TENANT, company_ids=[mid.company_id], ttl_days=90, unknown_hours=1)
    assert {s.email: s.suppressed for s in states}["ann@eu.partner.example"] is True
    queued = sendable_emails(states, policy="low_confidence")
    assert queued == ["cy@eu.other.example"]  # bob@ is verified already, ann@ is suppressed


def test_scoring_export_and_odoo_never_show_a_suppressed_subdomain(
    app_db: Database,
    owner_conn,  # type: ignore[no-untyped-def]
    sim: OdooSim,  # noqa: F811 - the fixture
) -> None:
    seeded = scored_night(app_db, owner_conn, sim, "json2")
    high_a, high_b, _ = (s for s in seeded if s.level == "high")
    # After scoring, before the export and the sync: a third party's address at a subdomain of a
    # suppressed domain (valid, and first in the export's order), and a company whose website is
    # a subdomain of a suppressed domain.
    add_contact(owner_conn, high_b.company_id, name="Aaron", title="COO", email="aaron@eu.partner.example",
                status="valid")  # fmt: skip
    owner_conn.execute(
        "UPDATE companies SET website_domain = %s WHERE company_id = %s", (f"shop.{high_a.domain}", high_a.company_id)
    )
    suppress(owner_conn, ("partner.example", "domain"), (high_a.domain, "domain"))

    # scoring inputs
    with app_db.tenant_transaction(TENANT) as conn:
        scoring = tenant_scoring(conn, tenant_id=TENANT)
        ids = [high_a.company_id, high_b.company_id]
        evidence = load_evidence(conn, tenant_id=TENANT, day=DAY, company_ids=ids, scoring=scoring)
    assert evidence[high_a.company_id].suppressed and not evidence[high_b.company_id].suppressed
    b = evidence[high_b.company_id]
    assert [c.suppressed for c in b.contacts if c.email == "aaron@eu.partner.example"] == [True]
    assert "aaron@eu.partner.example" not in {c.email for c in b.inputs.contacts}

    # export
    exported = {r.company_id: r for r in page_all(app_db, day=DAY, limit=50)}
    assert high_a.company_id not in exported
    assert exported[high_b.company_id].email == f"alice@{high_b.domain}"

    # Odoo
    run_sync_stage(sync_ctx(app_db))
    partners = sim.records("res.partner")
    assert high_a.uen not in {p.get("company_registry") for p in partners}
    emails = {p.get("email") for p in partners}
    assert "aaron@eu.partner.example" not in emails and f"alice@{high_b.domain}" in emails
    assert not any(e and e.endswith(high_a.domain) for e in emails)


@pytest.mark.parametrize(("email", "expected"), CASES)
def test_python_rule_cases(email: str, expected: bool) -> None:
    from leadgen_core.suppression import Suppression

    rule = Suppression(emails=frozenset({"boss@other.example"}), domains=frozenset({"acme.sg"}))
    assert rule.blocks(email) is expected
