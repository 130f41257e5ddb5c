"""Free-mail detection.

A lead whose only address is at a consumer mailbox (gmail.com, yahoo.com.sg, ...) is weaker:
the mailbox may be personal, shared or abandoned, and mailing it from a B2B campaign reads as
spam. `is_freemail` answers from a fixed list of domains plus a small rule for the regional
variants of the big providers (yahoo.co.uk, hotmail.fr, gmail.com.sg, ...), so the answer never
depends on the network.
"""

from __future__ import annotations

FREEMAIL_DOMAINS: frozenset[str] = frozenset(
    {
        # global providers
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "rocketmail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "mail.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "t-online.de",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "tutanota.com",
        "fastmail.com",
        "hey.com",
        "zohomail.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "inbox.com",
        "rediffmail.com",
        "libero.it",
        "orange.fr",
        "free.fr",
        "laposte.net",
        # Asia-Pacific consumer mail and ISP mailboxes
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "sohu.com",
        "naver.com",
        "hanmail.net",
        "daum.net",
        "singnet.com.sg",
        "pacific.net.sg",
        "bigpond.com",
        "live.com.sg",
        "live.com.au",
    }
)

# The big providers run one mailbox domain per country (yahoo.com.sg, hotmail.co.uk, gmail.fr).
# Listing every country is brittle, so a domain whose first label is one of these brands and
# whose remaining labels look like a country or generic suffix counts as free-mail too.
FREEMAIL_BRANDS: frozenset[str] = frozenset({"gmail", "googlemail", "yahoo", "ymail", "hotmail", "outlook"})

# Suffix labels are short ("com", "co", "sg", "uk"); a longer label means the brand word is a
# subdomain of someone else's domain (yahoo.example.org), which is not the provider.
MAX_SUFFIX_LABEL_CHARS = 3
MAX_SUFFIX_LABELS = 2


def email_domain(email: str) -> str | None:
    """The lower-cased domain of an address ("Jane@Acme.SG" -> "acme.sg"), or None if there is none.

    A bare domain (no "@") is returned as is, so callers may pass either form.
    """
    text = email.strip().lower()
    domain = text.rsplit("@", 1)[-1].strip().rstrip(".")
    if not domain or "." not in domain or " " in domain:
        return None
    return domain


def is_freemail(email: str) -> bool:
    """True when the address (or bare domain) belongs to a consumer free-mail provider."""
    domain = email_domain(email)
    if domain is None:
        return False
    if domain in FREEMAIL_DOMAINS:
        return True
    brand, _, suffix = domain.partition(".")
    labels = suffix.split(".")
    return (
        brand in FREEMAIL_BRANDS
        and 1 <= len(labels) <= MAX_SUFFIX_LABELS
        and all(0 < len(label) <= MAX_SUFFIX_LABEL_CHARS and label.isalpha() for label in labels)
    )
