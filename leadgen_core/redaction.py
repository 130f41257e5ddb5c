"""The one redaction of secrets before a text reaches a message, a log, metadata or the database.

`redact` removes every configured secret (vendor keys, Odoo keys and passwords), the userinfo of
any URL (`scheme://user:pw@host`) and the value of any `password=` in a DSN. `redact_url` does the
userinfo part alone. Every other module calls these; none carries its own copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"
# scheme://userinfo@ : everything between the scheme and the last '@' before the host's end.
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]*@")
_PASSWORD_KV = re.compile(r"(password\s*=\s*)(\S+)", re.I)


def redact_url(text: str) -> str:
    """TEXT with the userinfo of every URL in it replaced by ***."""
    return _USERINFO_RE.sub(rf"\1{REDACTED}@", text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """TEXT with every non-empty secret, any URL's userinfo and any DSN `password=` value replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _PASSWORD_KV.sub(rf"\1{REDACTED}", redact_url(text))
