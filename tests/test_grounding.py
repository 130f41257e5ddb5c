"""Extraction output stays grounded: people only from the company's own pages, titles shaped like titles.

Real: the grounding and shape rules (pure), the contacts stage's reading of stored extractions,
Postgres (a contact with a hostile title seeded as the owner; the sync runs as the application
role), the Odoo sync's JSON-2 client over loopback. Simulated: Odoo (OdooSim's store is checked).
"""

from __future__ import annotations

import pytest

from leadgen_core.db.pool import Database
from leadgen_core.enrich.contacts_stage import gather
from leadgen_core.enrich.grounding import ground_facts, own_pages_text
from leadgen_core.leads.sync_stage import run_sync_stage
from leadgen_core.odoo.sync import contact_vals
from leadgen_core.person_fields import clean_person_name, clean_title
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_core.vendors.openai_extract import CompanyFacts, Person
from tests.test_odoo_sync import odoo, scored_night, sim, sync_ctx  # noqa: F401 - fixtures
from tests.test_scoring_stage import add_contact

HOSTILE = "CEO – send invoices to IBAN GB33BUKB20201555555555"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("Chief Executive Officer", "Chief Executive Officer"),
        ("  Co-Founder &  CEO ", "Co-Founder & CEO"),
        ("Director – Sales, APAC", "Director – Sales, APAC"),
        ("Account Manager", "Account Manager"),
        (HOSTILE, None),
        ("CEO – send invoices to IBAN", None),  # no digits, still an instruction
        ("CEO. Please wire payments to our new account", None),
        ("Head of Sales https://evil.example/pay", None),
        ("CTO (call +65 6123 4567)", None),
        ("x" * 81, None),
        ("", None),
        (None, None),
    ],
)
def test_title_shape(raw: object, kept: str | None) -> None:
    assert clean_title(raw) == kept


@pytest.mark.parametrize(
    ("raw", "kept"),
    [("Alice Tan", "Alice Tan"), ("Dr. Wei-Ling O'Brien", "Dr. Wei-Ling O'Brien"), ("Tan Ah Kow", "Tan Ah Kow"),
     ("Send invoices to IBAN", None), ("alice@acme.sg", None), ("Bob 2", None), ("", None)],
)  # fmt: skip
def test_name_shape(raw: str, kept: str | None) -> None:
    assert clean_person_name(raw) == kept


def test_only_people_and_titles_the_companys_own_pages_show_are_kept() -> None:
    parts = [
        ("crawl", "Our team\nAlice   TAN, Chief Executive Officer. Raj Kumar leads engineering."),
        ("tavily:extract https://careers.acme.sg/team", "Mei Lim, Head of Sales"),  # own subdomain
        ("tavily:extract https://directory.example/acme", "Tom Ng, Finance Director"),  # a third party's page
        ("tavily:search https://news.example/acme", "Acme's CFO Sara Koh said ... Raj Kumar, Chairman"),
    ]
    facts = CompanyFacts(
        key_people=[
            Person(name="Alice Tan", title="Chief Executive Officer"),
            Person(name="Raj Kumar", title="Chairman"),  # the name is on the site, the title only in a snippet
            Person(name="Mei Lim", title="Head of Sales"),
            Person(name="Tom Ng", title="Finance Director"),
            Person(name="Sara Koh", title="CFO"),
            Person(name="Alice Tan", title=HOSTILE),
        ]
    )
    own = own_pages_text(parts, own_domain="acme.sg")
    grounded, dropped = ground_facts(facts, own_text=own)
    assert [(p.name, p.title) for p in grounded.key_people] == [
        ("Alice Tan", "Chief Executive Officer"),
        ("Raj Kumar", None),
        ("Mei Lim", "Head of Sales"),
        ("Alice Tan", None),
    ]
    assert dropped == 2
    # a hostile site that prints the free text on its own page still gets no such title
    hostile_own = own_pages_text([("crawl", f"Alice Tan, {HOSTILE}")], own_domain="acme.sg")
    assert ground_facts(facts, own_text=hostile_own)[0].key_people[0].title is None


def test_contacts_read_old_extractions_through_the_same_shape_rule() -> None:
    stored = {"key_people": [{"name": "Alice Tan", "title": HOSTILE}, {"name": "Pay IBAN now", "title": "CEO"}],
              "emails": ["alice.tan@acme.sg"]}  # fmt: skip
    candidates = gather(None, stored)
    assert [(c.email, c.name, c.title) for c in candidates] == [("alice.tan@acme.sg", "Alice Tan", None)]


def test_free_text_never_reaches_odoo_fields(app_db: Database, owner_conn, sim: OdooSim) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert "function" not in contact_vals(parent_id=1, email="a@acme.sg", name="Alice Tan", title=HOSTILE)
    seeded = scored_night(app_db, owner_conn, sim, "json2")
    high = next(s for s in seeded if s.level == "high")
    add_contact(owner_conn, high.company_id, name="Send invoices to IBAN GB33", title=HOSTILE,
                email=f"accounts@{high.domain}", status="valid")  # fmt: skip
    run_sync_stage(sync_ctx(app_db))
    partners = {p["email"]: p for p in sim.records("res.partner") if p.get("email")}
    planted = partners[f"accounts@{high.domain}"]
    assert not planted.get("function") and planted["name"] == f"accounts@{high.domain}"
    assert partners[f"alice@{high.domain}"]["function"] == "CEO"  # a real title still goes through
    assert not any("IBAN" in str(v) for p in sim.records("res.partner") for v in p.values())
