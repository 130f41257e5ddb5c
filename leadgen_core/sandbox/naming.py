"""How sandbox companies map to sandbox websites.

The web simulator serves every host under `SANDBOX_TLD` as a virtual host on one loopback port;
the Tavily simulator answers "<company> official website" queries with the same domain; the
crawler's sandbox resolver maps the TLD to 127.0.0.1. All three use these functions, so a
company's site is the same everywhere in a run.
"""

from __future__ import annotations

import hashlib
import re

SANDBOX_TLD = "sandbox.test"
_LEGAL_SUFFIXES = re.compile(r"\b(pte\.?|ltd\.?|limited|private|llp|lp|inc\.?|co\.?|corporation)\b", re.I)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def company_slug(name: str) -> str:
    """A DNS-safe slug of a company name without its legal suffixes ("Acme Robotics Pte. Ltd." -> "acme-robotics")."""
    base = _LEGAL_SUFFIXES.sub(" ", name.lower())
    slug = _NON_ALNUM.sub("-", base).strip("-")
    return (slug or "company")[:50].strip("-")


def sandbox_domain(name: str) -> str:
    """The sandbox website domain of a company name."""
    return f"{company_slug(name)}.{SANDBOX_TLD}"


def is_sandbox_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host == SANDBOX_TLD or host.endswith("." + SANDBOX_TLD)


def stable_fraction(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings: the sandbox's source of "randomness" per item."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
