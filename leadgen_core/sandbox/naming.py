"""How sandbox companies map to sandbox websites.

The web simulator serves every host under `SANDBOX_TLD` as a virtual host on one loopback port;
the Tavily simulator answers "<company> official website" queries with the same domain; the
crawler's sandbox resolver maps the TLD to 127.0.0.1. All three use these functions, so a
company's site is the same everywhere in a run.
"""

from __future__ import annotations

import hashlib

from leadgen_core.sandbox_contract import SANDBOX_TLD as SANDBOX_TLD
from leadgen_core.sandbox_contract import company_slug as company_slug
from leadgen_core.sandbox_contract import is_sandbox_host as is_sandbox_host


def sandbox_domain(name: str) -> str:
    """The sandbox website domain of a company name."""
    return f"{company_slug(name)}.{SANDBOX_TLD}"


def stable_fraction(*parts: str) -> float:
    """A deterministic number in [0, 1) from strings: the sandbox's source of "randomness" per item."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
