"""Tenant-given URLs: the one check for a tenant's Odoo URL, with userinfo redacted by
leadgen_core.redaction.

A URL such as `https://admin:pw@acme.odoo.com` would carry a credential into the database, into
every error text that names the URL, and into logs; a URL with a newline or a tab could forge a
second log line or a header. So a tenant's Odoo URL is refused at `leadgen odoo connect` (and
again before the night uses it) unless it is a plain http(s) URL without userinfo, whitespace or
control characters, and `redact_url` removes the userinfo of any URL inside a text before it is
shown.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from leadgen_core.errors import ConfigError
from leadgen_core.redaction import REDACTED, redact_url

__all__ = ["MAX_URL_CHARS", "REDACTED", "check_odoo_url", "redact_url"]

MAX_URL_CHARS = 2048


def _shown(url: str) -> str:
    """URL as it may appear in a message: userinfo removed, unprintables escaped, bounded."""
    return repr(redact_url(url[:200]))


def check_odoo_url(url: str) -> str:
    """The URL without a trailing slash, or ConfigError saying what is wrong (never its userinfo)."""
    if not isinstance(url, str) or not url:
        raise ConfigError("--url must be an http(s) URL, got nothing")
    if len(url) > MAX_URL_CHARS:
        raise ConfigError(f"--url must be at most {MAX_URL_CHARS} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigError(f"--url must not contain whitespace or control characters, got {_shown(url)}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a non-numeric or out-of-range port raises here
    except ValueError:
        raise ConfigError(f"--url is not a valid URL, got {_shown(url)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url must be an http(s) URL, got {_shown(url)}")
    if "@" in parts.netloc:
        raise ConfigError(f"--url must not carry a user or password, got {_shown(url)}")
    if parts.query or parts.fragment:
        raise ConfigError(f"--url must be the Odoo base URL, without a query or fragment, got {_shown(url)}")
    return url.rstrip("/")
