"""What product code knows of the sandbox, without importing it: the sandbox TLD and dummy keys.

The crawler's resolver maps hosts under `SANDBOX_TLD` to loopback, web search recognises the
sandbox's company domains, and the vendor clients treat the sandbox's dummy keys as "the
simulator" rather than a tenant's account. `leadgen_core.sandbox` builds on these same names;
product code (crawler, enrich) imports this module, never `leadgen_core.sandbox` (ruff TID251).
"""

from __future__ import annotations

import re

SANDBOX_TLD = "sandbox.test"
TAVILY_KEY = "sandbox-tavily-key"
LUSHA_KEY = "sandbox-lusha-key"
ZEROBOUNCE_KEY = "sandbox-zerobounce-key"
OPENAI_KEY = "sandbox-openai-key"
ODOO_KEY = "sandbox-odoo-key"

_LEGAL_SUFFIXES = re.compile(r"\b(pte\.?|ltd\.?|limited|private|llp|lp|inc\.?|co\.?|corporation)\b", re.I)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def company_slug(name: str) -> str:
    """A DNS-safe slug of a company name without its legal suffixes ("Acme Robotics Pte. Ltd." -> "acme-robotics")."""
    base = _LEGAL_SUFFIXES.sub(" ", name.lower())
    slug = _NON_ALNUM.sub("-", base).strip("-")
    return (slug or "company")[:50].strip("-")


def is_sandbox_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == SANDBOX_TLD or host.endswith("." + SANDBOX_TLD)
