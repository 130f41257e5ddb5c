"""The shape of a person's name and of a job title, wherever one comes from.

A name or a title is a short run of words, not a sentence: no digits, no URL or address, no
payment or instruction words. "CEO – send invoices to IBAN …" is not a title, and is dropped
wherever it comes from (the extraction model, an extraction stored before grounding, Lusha, a
hostile page) before it can reach `contacts` or an Odoo field. Used by the extraction's grounding
(`leadgen_core.enrich.grounding`), the contacts stage and the Odoo sync's contact values.
"""

from __future__ import annotations

import re
import unicodedata

MAX_TITLE_CHARS = 80
MAX_TITLE_WORDS = 8
MAX_NAME_CHARS = 80
MAX_NAME_WORDS = 6
# Letters (any script), spaces and the punctuation real titles and names use.
TITLE_RE = re.compile(r"^[^\W\d_]+(?:[ ,&/().'’–—-]+[^\W\d_]+)*\.?$")
NAME_RE = re.compile(r"^[^\W\d_]+(?:[ .'’-]+[^\W\d_]+)*\.?$")
# Words that make a sentence an instruction or a payment request, never part of a job title
# (words a real title may hold, like "Account", "Payments" or "Contact Centre", are not here).
INSTRUCTION_WORDS = frozenset(
    {"beneficiary", "bitcoin", "click", "http", "https", "iban", "invoice", "invoices", "password", "please",
     "send", "swift", "urgent", "whatsapp", "wire", "www"}
)  # fmt: skip


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", text.casefold())


def clean_title(value: object) -> str | None:
    """VALUE as a job title, or None when it is not shaped like one."""
    if not isinstance(value, str):
        return None
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    if not text or len(text) > MAX_TITLE_CHARS or len(text.split()) > MAX_TITLE_WORDS:
        return None
    if not TITLE_RE.match(text) or INSTRUCTION_WORDS & set(_words(text)):
        return None
    return text


def clean_person_name(value: object) -> str | None:
    """VALUE as a person's name, or None when it is not shaped like one."""
    if not isinstance(value, str):
        return None
    text = " ".join(unicodedata.normalize("NFKC", value).split())
    if not text or len(text) > MAX_NAME_CHARS or len(text.split()) > MAX_NAME_WORDS:
        return None
    if not NAME_RE.match(text) or INSTRUCTION_WORDS & set(_words(text)):
        return None
    return text
