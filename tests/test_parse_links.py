"""parse_page finds links, emails and phones without the slow generic calls: the answers must be
urljoin's and the plain finditer scans', match for match.

`_Base.link` is compared with `_link_slow` (urljoin + urlsplit/urlunsplit, the reference) on a
corpus of ordinary, tricky and hostile hrefs against several base URLs, and on random hrefs drawn
from the characters that matter to URL parsing; `_email_matches` and `_phone_matches` with
`_EMAIL.finditer` and `_PHONE.finditer` on tricky and random texts.
"""

from __future__ import annotations

import random
import re

import pytest

from leadgen_core.crawler.parse import (
    _EMAIL,
    _PHONE,
    MAX_AT_SIGNS,
    MAX_URL_CHARS,
    _Base,
    _email_matches,
    _link_slow,
    _phone_matches,
    parse_page,
    social_link,
)

BASES = (
    "https://acme.example.sg/",
    "https://acme.example.sg",
    "http://acme.example.sg/about",
    "https://acme.example.sg/a/b/page.html",
    "https://acme.example.sg/a/b/",
    "https://Acme.Example.SG:8443/x/y?q=1#frag",
    "https://acme.example.sg/a//b/c",
    "https://acme.example.sg/a/./b/../c",
    "https://acme.example.sg/a;p/b;q",
    "https://user:pw@acme.example.sg/a/",
    "HTTPS://ACME.EXAMPLE.SG/a/",
    "https://www.linkedin.com/company/acme",
    "https://linkedin.com/",
    "https://acme.example.sg/%7Euser/",
    "http://[::1]:8080/a/b",
    "https://acme.example.sg/é/",
)
HREFS = (
    "",
    "/",
    "/about",
    "/about/",
    "/team#people",
    "/team#",
    "/contact?x=1",
    "/contact?",
    "/contact?x=1#y",
    "/contact?#",
    "/a/b/c",
    "/a//b",
    "//other.example/x",
    "///x",
    "/./a",
    "/../a",
    "/a/./b",
    "/a/../b",
    "/a/..",
    "/a/.",
    "/.well-known/security.txt",
    "/...",
    "/a;p",
    "/a;",
    "/a:b",
    "/a\\b",
    "/a b",
    "/a\tb",
    "/a\nb",
    "/a\rb",
    "/a\x00b",
    "/a\x7fb",
    "/é",
    "/%E9",
    "/a%2F..%2Fb",
    "about",
    "about.html",
    "team/",
    "a/b/c",
    "a//b",
    "./a",
    "../a",
    "../../../../a",
    ".",
    "..",
    "a/..",
    "a/./b",
    "a:b",
    "a?x=1",
    "a#f",
    "a?",
    "a#",
    "?x=1",
    "?",
    "#frag",
    "#",
    "home.html",
    "http",
    "https",
    "http://other.example",
    "http://other.example/",
    "https://other.example/x",
    "https://other.example/x?y=1#z",
    "https://other.example/x#",
    "https://other.example/x?",
    "https://other.example:443/x",
    "https://other.example:99999/x",
    "https://other.example:/x",
    "https://OTHER.example/X",
    "HTTPS://other.example/x",
    "Https://other.example/x",
    "https://user@other.example/x",
    "https://other.example/a/../b",
    "https://other.example/a//b",
    "https://other.example?q=1",
    "https://other.example#f",
    "https://[::1]/x",
    "http://[x/",
    "https://[::1/x",
    "//[x]/",
    "https://exämple.com/x",
    "https:other.example/x",
    "https:/other.example/x",
    "http:///x",
    "ftp://other.example/x",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<b>x</b>",
    "mailto2:x",
    "https://www.linkedin.com/company/acme",
    "https://m.facebook.com/acme/",
    "https://twitter.com/intent/tweet?text=x",
    "https://x.com",
    "/company/acme",
    "company/acme",
    "1/2",
    "a" * 3000,
    "/" + "a" * 2040,
    "/" + "a" * 2030 + "#" + "f" * 20,
    "/" + "a" * 2030 + "?" + "q" * 20,
    "https://o.example/" + "a" * 2040,
    "https://o.example/" + "a" * 2020 + "#" + "f" * 20,
    "https://o.example/" + "a" * 2020 + "#",
)


@pytest.mark.parametrize("base_url", BASES)
def test_link_resolution_matches_urljoin(base_url: str) -> None:
    base = _Base(base_url)
    for href in HREFS:
        fast, maybe_social = base.link(href)
        assert fast == _link_slow(base_url, href), (base_url, href)
        if fast is not None and not maybe_social:
            assert social_link(fast) is None, (base_url, href)


def test_link_resolution_matches_urljoin_on_random_hrefs() -> None:
    rng = random.Random(20261205)
    alphabet = "aZ09/.:;?#@%~-_=&+!$'()*,[] \\\t\né"
    pieces = ("/", "..", ".", "//", "http://", "https://", "h.example", ":80", "?", "#", "a", "b")
    for base_url in BASES:
        base = _Base(base_url)
        for _ in range(1500):
            parts = [
                rng.choice(pieces) if rng.random() < 0.4 else rng.choice(alphabet) for _ in range(rng.randint(0, 12))
            ]
            href = "".join(parts)
            for candidate in (href, "/" + href, "https://o.example/" + href):
                fast, maybe_social = base.link(candidate)
                assert fast == _link_slow(base_url, candidate), (base_url, candidate)
                if fast is not None and not maybe_social:
                    assert social_link(fast) is None


def test_parse_page_links_and_social_from_both_paths() -> None:
    html = (
        '<a href="/about">About</a><a href="team/">Team</a><a href="../x">Up</a>'
        '<a href="https://www.linkedin.com/company/acme">in</a><a href="javascript:void(0)">js</a>'
        '<a href="http://[x/">broken</a>'
        f'<a href="/{"a" * 3000}">long</a><a href="/contact#form">c</a>'
    )
    page = parse_page(html, "https://acme.example.sg/en/index.html")
    assert page.links == (
        "https://acme.example.sg/about",
        "https://acme.example.sg/en/team/",
        "https://acme.example.sg/x",
        "https://www.linkedin.com/company/acme",
        "https://acme.example.sg/contact",
    )
    assert page.social_links == ("https://www.linkedin.com/company/acme",)
    assert len(page.links[0]) < MAX_URL_CHARS


def test_links_on_a_social_site_are_social_links() -> None:
    page = parse_page('<a href="/company/acme">x</a><a href="people">y</a>', "https://www.linkedin.com/company/")
    assert page.social_links == (
        "https://www.linkedin.com/company/acme",
        "https://www.linkedin.com/company/people",
    )


# --- emails and phones in the text: the same matches as the plain finditer scans ------------------

TEXTS = (
    "",
    "@",
    "@@@",
    "a@b.co",
    "write to info@acme.example.sg or sales@acme.example.sg.",
    "x.y@a.b.c.example.com-z@q.example",
    "a@b.com-x@y.com",
    "first.last+tag@sub.acme.example.sg, (at) and @ alone",
    "_a@b.com a_@b.com .a@b.com -a@b.com %a@b.com +a@b.com",
    "K@b.com ſam@b.com İbrahim@b.com ı@b.com é@b.com aé@b.com",
    "logo@2x.png and photo@3x.jpg",
    "a" * 64 + "@b.com " + "a" * 65 + "@b.com " + "a" * 200 + "@b.com",
    "x@" + "b" * 70 + ".com",
    "mei.wong@b0-trading.example.sg\u00a0ryan@b0.example.sg",
    "a@b@c.com a@@b.com @a.com a@.com a@b.c a@b.comm@d.org",
    "call +65 6123 4567 or (+65) 6123-4567 or 0065 6123 4567",
    "a+65 6123 4567 _+65 6123 4567 ++65 61234567 x(+65)61234567 é+65 61234567",
    "+1 (555) 123.4567 ext +44 20 7946 0958 001 212 555 0199",
    "version 0.0.1 and 00 and +",
)


def _all(pattern: re.Pattern[str], text: str) -> list[str]:
    return [m.group(0) for m in pattern.finditer(text)]


def _check_text(text: str) -> None:
    assert list(_email_matches(text)) == _all(_EMAIL, text), text
    assert list(_phone_matches(text)) == _all(_PHONE, text), text


def test_email_and_phone_matches_equal_finditer() -> None:
    for text in TEXTS:
        _check_text(text)


def test_email_and_phone_matches_equal_finditer_on_random_text() -> None:
    rng = random.Random(51205)
    alphabet = "ab09@.-_%+ ()\n\tK\u017f\u0131é@@..--++00+("
    pieces = ("info@acme.example.sg", "@", "a.b", "+65 6123 4567", "(+65)", "00", ".com", "-", "x" * 70)
    for _ in range(4000):
        parts = [rng.choice(pieces) if rng.random() < 0.3 else rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        _check_text("".join(parts))


def test_many_at_signs_take_the_plain_scan() -> None:
    text = "a@b.com " * (MAX_AT_SIGNS + 10) + "@" * 1000
    _check_text(text)
