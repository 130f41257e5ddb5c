"""What the extraction model may tell us about people, and the shape of a name or a job title.

The model reads the company's own pages and, when the crawl was thin, third-party search
snippets. A snippet can name anyone (a namesake, a competitor's staff, a planted "Finance
Director"), and a page can carry text aimed at whoever copies it. So:

- **Grounded.** A person the model names is kept only when the name appears in the company's own
  pages: the crawl's text, or a page Tavily extracted from the company's own domain (or a
  subdomain). A title is kept only when it appears there too; otherwise the person stays, untitled.
- **Shaped.** A name or a title is a short run of words, not a sentence: no digits, no URL or
  address, no payment or instruction words (`leadgen_core.person_fields`, also applied by the
  contacts stage and the Odoo sync).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from leadgen_core.enrich.corpus import CRAWL_LABEL
from leadgen_core.enrich.websearch import domain_of
from leadgen_core.person_fields import clean_person_name, clean_title
from leadgen_core.vendors.openai_extract import CompanyFacts, Person


def _fold(text: str) -> str:
    """Case, accents' composition and whitespace normalised, for "does it appear" tests."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _own(label: str, own_domain: str) -> bool:
    if label == CRAWL_LABEL:
        return True
    if not label.startswith("tavily:extract ") or not own_domain:
        return False
    domain = domain_of(label.removeprefix("tavily:extract ").strip())
    return domain == own_domain or domain.endswith("." + own_domain)


def own_pages_text(parts: Iterable[tuple[str, str]], *, own_domain: str | None) -> str:
    """The text of the company's own pages among the labelled corpus PARTS, normalised."""
    own = (own_domain or "").lower()
    return " \n ".join(_fold(text) for label, text in parts if _own(label, own))


def ground_facts(facts: CompanyFacts, *, own_text: str) -> tuple[CompanyFacts, int]:
    """FACTS with only the people (and titles) OWN_TEXT shows; also the number of people dropped."""
    kept: list[Person] = []
    for person in facts.key_people:
        name = clean_person_name(person.name)
        if name is None or _fold(name) not in own_text:
            continue
        title = clean_title(person.title)
        kept.append(Person(name=name, title=title if title and _fold(title) in own_text else None))
    return facts.model_copy(update={"key_people": kept}), len(facts.key_people) - len(kept)
