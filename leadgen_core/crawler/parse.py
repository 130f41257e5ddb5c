"""Page signals from HTML: title, visible text, emails, phones, social links and links.

Structure comes from selectolax (lexbor); regular expressions run only over the extracted text
(emails, phones). Pages are hostile input, so:

* script, style, template, svg, iframe and hidden elements (`hidden`, `aria-hidden`, inline
  `display:none`/`visibility:hidden`) are removed before text is taken; that is where
  "ignore previous instructions" payloads aimed at the downstream LLM usually hide;
* lexbor's tree builder is quadratic in nesting depth (about 0.7 s at 16k nested divs, 3.3 s
  at 32k), so the input is cut at MAX_PARSE_CHARS and at its MAX_TAGS-th "<" before parsing;
* text and every list are capped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_PARSE_CHARS = 1_000_000
MAX_TAGS = 15_000
MAX_TEXT_CHARS = 20_000
MAX_TITLE_CHARS = 300
MAX_EMAILS = 50
MAX_PHONES = 30
MAX_SOCIAL_LINKS = 20
MAX_LINKS = 200
MAX_URL_CHARS = 2048
LOCAL_COUNTRY_CODE = "65"  # tel: links without a country code are Singapore numbers
REMOVED_TAGS = ["script", "style", "noscript", "template", "svg", "iframe", "object", "embed"]
HIDDEN_SELECTORS = (
    "[hidden]",
    '[aria-hidden="true"]',
    '[style*="display:none"]',
    '[style*="display: none"]',
    '[style*="visibility:hidden"]',
    '[style*="visibility: hidden"]',
)
SOCIAL_HOSTS = {
    "linkedin.com": "linkedin",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "instagram.com": "instagram",
    "youtube.com": "youtube",
    "tiktok.com": "tiktok",
}
SHARE_PATH_PREFIXES = ("/sharer", "/share", "/intent", "/sharearticle", "/dialog")
NOT_EMAIL_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ico", "bmp"})

_EMAIL = re.compile(
    r"(?<![\w.%+-])[a-z0-9][a-z0-9._%+-]{0,63}@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b", re.I
)
_AT = re.compile(r"\s*[\[\(\{]\s*at\s*[\]\)\}]\s*", re.I)
_DOT = re.compile(r"\s*[\[\(\{]\s*dot\s*[\]\)\}]\s*", re.I)
_PHONE = re.compile(r"(?<![\w+])(?:\+|\(\+|00)\d{1,3}\)?(?:[ .\-]?\(?\d{1,5}\)?){1,6}")
# Scanning a page's text with _EMAIL or _PHONE tries their lookbehinds at every position (about
# 0.35 and 0.2 ms a page); the same matches are found from each "@" (_email_matches) and from
# where the phone's body starts (_phone_matches), tests/test_parse_links.py holds them equal.
_EMAIL_RUN = re.compile(r"[\w.%+-]*\Z")  # the run of characters _EMAIL's lookbehind refuses, up to an "@"
_PHONE_BODY = re.compile(_PHONE.pattern.removeprefix(r"(?<![\w+])"))
_PHONE_BEFORE = re.compile(r"[\w+]")
MAX_AT_SIGNS = 500  # past this many "@" in a text, the plain scan is cheaper
_BRACKET_AT = re.compile(r"[\[\(\{]\s*at\s*[\]\)\}]", re.I)
_BRACKET_DOT = re.compile(r"[\[\(\{]\s*dot\s*[\]\)\}]", re.I)
_BRACKET_WORD = re.compile(r"[\[\(\{]\s*(?:at|dot)\s*[\]\)\}]", re.I)  # either: one scan of a page without


@dataclass(frozen=True)
class PageSignals:
    """What one page says. `anchors` pairs each link with its (capped) anchor text."""

    title: str
    text: str
    text_chars: int
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    social_links: tuple[str, ...]
    links: tuple[str, ...]
    anchors: tuple[tuple[str, str], ...] = ()


def _budget(html: str) -> str:
    """Cut hostile input down to what lexbor parses in bounded time."""
    html = html[:MAX_PARSE_CHARS]
    if html.count("<") <= MAX_TAGS:
        return html
    pos = -1
    for _ in range(MAX_TAGS):
        pos = html.find("<", pos + 1)
    return html[:pos]


def _clean(text: str, limit: int) -> str:
    """Whitespace runs as one space, at most LIMIT characters (str.split's whitespace is re's \\s)."""
    return " ".join(text.split())[:limit]


def _remove_hidden(tree: LexborHTMLParser) -> None:
    nodes: dict[int, LexborNode] = {}
    for selector in HIDDEN_SELECTORS:
        for node in tree.css(selector):
            nodes.setdefault(node.mem_id, node)
    if not nodes or tree.root is None:
        return
    order = {node.mem_id: i for i, node in enumerate(tree.root.traverse())}
    # Reverse document order removes descendants before their ancestors, so no node is touched
    # after the subtree holding it was freed.
    for node in sorted(nodes.values(), key=lambda n: order.get(n.mem_id, -1), reverse=True):
        node.decompose()


def normalise_email(raw: str) -> str | None:
    email = unquote(raw).strip().strip(".").lower()
    match = _EMAIL.fullmatch(email)
    if match is None:
        return None
    if email.rsplit(".", 1)[-1] in NOT_EMAIL_TLDS:
        return None  # "logo@2x.png" is a file name
    return email


def normalise_phone(raw: str, *, assume_local: bool = False) -> str | None:
    """E.164-style "+6561234567", or None when the digits cannot be a phone number."""
    stripped = raw.strip()
    digits = re.sub(r"\D", "", stripped)
    if stripped.startswith("00"):
        digits = digits[2:]
    elif not stripped.lstrip("(").startswith("+"):
        if not (assume_local and len(digits) == 8 and digits[0] in "689"):
            return None
        digits = LOCAL_COUNTRY_CODE + digits
    if not 8 <= len(digits) <= 15:
        return None
    return "+" + digits


def social_link(url: str) -> str | None:
    """A normalised company-profile URL on a social network, or None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    for suffix in SOCIAL_HOSTS:
        if host == suffix or host.endswith("." + suffix):
            path = parts.path.rstrip("/")
            if not path or path.lower().startswith(SHARE_PATH_PREFIXES):
                return None
            return urlunsplit(("https", host.removeprefix("m."), path, "", ""))
    return None


# Links `urljoin` would resolve by plain concatenation: ASCII path characters without ";" (params),
# ":" (a scheme), whitespace or "\\", a non-empty query and an optional fragment. Anything else
# (dot segments and "//" are checked apart) takes the `urljoin` path.
_PCHARS = r"[A-Za-z0-9\-._~!$&'()*+,=@%/]"
_QCHARS = r"[A-Za-z0-9\-._~!$&'()*+,=@%/:?]"
_SIMPLE_LINK = re.compile(rf"({_PCHARS}*)(?:\?({_QCHARS}+))?(?:#({_QCHARS}+))?")
_SIMPLE_ABSOLUTE = re.compile(
    rf"(https?://[A-Za-z0-9\-.]+(?::[0-9]{{1,5}})?)(/{_PCHARS}*)?(?:\?({_QCHARS}+))?(?:#({_QCHARS}+))?"
)


class _Base:
    """A page's own URL, split once, to resolve its links without `urljoin` when that is exact."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url
        self.ok = False
        match = _SIMPLE_ABSOLUTE.fullmatch(base_url)
        if match is None:
            return
        self.origin = match.group(1)
        path = match.group(2) or ""
        self.dir = path[: path.rfind("/") + 1] or "/"
        self.social = social_link(self.origin + "/x") is not None
        self.ok = "//" not in path and "/." not in path

    def link(self, href: str) -> tuple[str | None, bool]:
        """The absolute http(s) link without its fragment (None for javascript:, data: and links
        over MAX_URL_CHARS: the same answer as `_link_slow`), and whether it may be a social
        profile (False for a link resolved against this page's own, non-social host)."""
        if self.ok:
            first = href[:1]
            if first == "/" and href[1:2] != "/" or first.isalnum() and ":" not in href:
                match = _SIMPLE_LINK.fullmatch(href)
                if match is not None:
                    path = match.group(1)
                    if "//" not in path and "/." not in path and path[:1] != ".":
                        prefix = self.origin if first == "/" else self.origin + self.dir
                        return _joined(prefix, path, match.group(2), match.group(3)), self.social
            elif href.startswith(("http://", "https://")):
                match = _SIMPLE_ABSOLUTE.fullmatch(href)
                if match is not None:
                    return _joined(match.group(1), match.group(2) or "", match.group(3), match.group(4)), True
        return _link_slow(self.url, href), True


def _joined(prefix: str, path: str, query: str | None, fragment: str | None) -> str | None:
    """prefix + path (+ "?" query), or None when, with a non-empty fragment, it is over MAX_URL_CHARS."""
    url = prefix + path if query is None else f"{prefix}{path}?{query}"
    return url if len(url) + (len(fragment) + 1 if fragment else 0) <= MAX_URL_CHARS else None


def _link_slow(base_url: str, href: str) -> str | None:
    try:
        url = urljoin(base_url, href)
        parts = urlsplit(url)
    except ValueError:
        return None  # "http://[x": an unbalanced IPv6 bracket, or a port urlsplit refuses
    if parts.scheme not in ("http", "https") or len(url) > MAX_URL_CHARS:
        return None  # javascript:, data:, and absurd URLs
    return urlunsplit(parts._replace(fragment=""))


def _email_matches(text: str) -> Iterator[str]:
    """What `_EMAIL.finditer(text)` matches, found without scanning the text with it.

    Every match holds exactly one "@" and starts where the run of characters the lookbehind
    refuses ([\\w.%+-], a superset of the local part's) ending at that "@" starts: the one place
    a match for that "@" can start. A start inside the previous match is skipped, as finditer
    never overlaps matches."""
    if text.count("@") > MAX_AT_SIGNS:
        yield from (m.group(0) for m in _EMAIL.finditer(text))
        return
    end = 0
    at = text.find("@")
    while at >= 0:
        run = _EMAIL_RUN.search(text, max(0, at - 65), at)  # the local part is at most 64 characters
        start = run.start() if run is not None else at
        if end <= start < at:
            match = _EMAIL.match(text, start)
            if match is not None:
                yield match.group(0)
                end = match.end()
        at = text.find("@", max(at + 1, end))


def _phone_matches(text: str) -> Iterator[str]:
    """What `_PHONE.finditer(text)` matches: its body found by a scan that can skip ahead to the
    next "+", "(" or "0", then its lookbehind checked at that one place."""
    pos = 0
    while (match := _PHONE_BODY.search(text, pos)) is not None:
        start = match.start()
        if start and _PHONE_BEFORE.match(text, start - 1):
            pos = start + 1
            continue
        yield match.group(0)
        pos = match.end()


def _add(bucket: dict[str, None], value: str | None, cap: int) -> None:
    if value and len(bucket) < cap:
        bucket.setdefault(value, None)


def parse_page(html: str, base_url: str) -> PageSignals:
    """Extract the signals of one HTML page; never raises on malformed markup."""
    tree = LexborHTMLParser(_budget(html))
    title_node = tree.css_first("title") or tree.css_first("h1")
    title = _clean(title_node.text(separator=" "), MAX_TITLE_CHARS) if title_node is not None else ""
    tree.strip_tags(REMOVED_TAGS)
    _remove_hidden(tree)

    emails: dict[str, None] = {}
    phones: dict[str, None] = {}
    social: dict[str, None] = {}
    anchors: dict[str, str] = {}
    base = _Base(base_url)
    for a in tree.css("a[href]"):
        href = (a.attributes.get("href") or "").strip()
        lower = href.lower()
        if lower.startswith("mailto:"):
            _add(emails, normalise_email(href[7:].split("?", 1)[0]), MAX_EMAILS)
            continue
        if lower.startswith("tel:"):
            _add(phones, normalise_phone(unquote(href[4:]), assume_local=True), MAX_PHONES)
            continue
        url, maybe_social = base.link(href)
        if url is None:
            continue  # javascript:, data:, and absurd URLs
        if maybe_social:
            _add(social, social_link(url), MAX_SOCIAL_LINKS)
        if url not in anchors and len(anchors) < MAX_LINKS:
            anchors[url] = _clean(a.text(separator=" "), 100)

    root = tree.body or tree.root
    text = _clean(root.text(separator=" "), MAX_TEXT_CHARS) if root is not None else ""
    # "name [at] example [dot] com": each substitution costs more than the rest of the page, so it
    # runs only when its bracketed word is there at all
    deobfuscated = text
    if _BRACKET_WORD.search(text):
        deobfuscated = _AT.sub("@", text) if _BRACKET_AT.search(text) else text
        deobfuscated = _DOT.sub(".", deobfuscated) if _BRACKET_DOT.search(deobfuscated) else deobfuscated
    for found in _email_matches(deobfuscated):
        _add(emails, normalise_email(found), MAX_EMAILS)
    for found in _phone_matches(text):
        _add(phones, normalise_phone(found), MAX_PHONES)

    return PageSignals(
        title=title,
        text=text,
        text_chars=len(text),
        emails=tuple(emails),
        phones=tuple(phones),
        social_links=tuple(social),
        links=tuple(anchors),
        anchors=tuple(anchors.items()),
    )
