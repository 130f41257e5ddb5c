"""Realistic pages for the website simulator's `realistic` profile.

A demo page is ~1 KB of text that holds nothing but facts, so every extraction prompt is tiny and
every fact is in the first few hundred characters. Real small-company sites are not like that:

* the HTML of one page weighs 30–400 KB, most of it scripts (tag managers, theme bundles, JSON
  state) and markup (HTTP Archive Web Almanac 2022/2024, "Page Weight" chapter: the median mobile
  HTML document is ~30 KB and the 90th percentile ~150 KB, with far more in inline scripts on
  site-builder templates; PAGE_HTML_BYTES spans that range up to a heavy 400 KB);
* the visible text of one page is 2,000–25,000 characters (PAGE_TEXT_CHARS), most of it
  marketing copy, testimonials, news and FAQ, not facts;
* every page of a site repeats the same mega-menu, cookie banner and footer.

Sizes are drawn log-uniformly from those ranges, per (seed, host, path), so the same seed always
serves the same bytes. The facts of `SiteSpec` (company, phone, emails, people and titles) sit at
a page-dependent depth inside the copy, never only at the top.
"""

from __future__ import annotations

import functools
import html
import math
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # web.py imports this module; the type only
    from leadgen_core.sandbox.web import SiteSpec

PAGE_HTML_BYTES = (30_000, 400_000)  # see the module docstring (Web Almanac page-weight chapter)
PAGE_TEXT_CHARS = (2_000, 25_000)  # visible text of one page, before the shared boilerplate
MENU_ITEMS = 36
SCRIPT_CHUNK = 4_000
SCRIPT_STOCK_BYTES = 1_000_000
# Where the facts sit in a page's copy, as a fraction of the filler that comes before them.
FACT_DEPTH = {"/": 0.15, "/about": 0.35, "/contact": 0.55, "/team": 0.45, "/careers": 0.7}

WORDS_TEXT = (
    "reliable solutions customers partners quality service industry experience trusted delivery "
    "innovative leading regional growth projects clients support teams value sustainable efficient "
    "integrated platform operations excellence commitment professional strategy across markets "
    "tailored dedicated flexible modern proven local global standards process results network "
    "capabilities digital advanced compliance safety certified award winning responsive outcomes"
)
WORDS = tuple(WORDS_TEXT.split())
MENU_LABELS = (
    "Solutions", "Industries", "Case studies", "Resources", "Insights", "Events", "Webinars",
    "Partners", "Sustainability", "Investors", "Press", "Downloads", "Support", "FAQ", "Pricing",
    "Locations", "Awards", "Certifications", "Testimonials", "Gallery", "Newsletter", "Login",
)  # fmt: skip
SECTION_TITLES = (
    "Why choose us", "What our clients say", "Latest news", "Frequently asked questions",
    "Our commitment to quality", "Industries we serve", "Our process", "Sustainability",
)  # fmt: skip


def _log_uniform(rng: random.Random, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _sentence_stdlib(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 18))]
    return " ".join(words).capitalize() + "."


_WORD_BITS = len(WORDS).bit_length()


def _sentence_drawn(rng: random.Random) -> str:
    """`_sentence_stdlib`'s sentence from the same draws, ~2x faster: `randint(9, 18)` and `choice`
    come down to `getrandbits` with rejection (CPython's `Random._randbelow`), done here without the
    two calls a word around it. The filler is most of the realistic web simulator's CPU (a page's
    copy is thousands of words), and the simulators share the benchmark's two cores with the run
    workers. `_sentence` is this one when `_same_sentences` finds at import that both give the
    same text, else the stdlib's."""
    draw = rng.getrandbits
    extra = draw(4)
    while extra >= 10:
        extra = draw(4)
    words = []
    for _ in range(9 + extra):
        i = draw(_WORD_BITS)
        while i >= len(WORDS):
            i = draw(_WORD_BITS)
        words.append(WORDS[i])
    return " ".join(words).capitalize() + "."


def _same_sentences() -> bool:
    a, b = random.Random("leadgen-probe"), random.Random("leadgen-probe")
    return all(_sentence_stdlib(a) == _sentence_drawn(b) for _ in range(64)) and a.random() == b.random()


_sentence = _sentence_drawn if _same_sentences() else _sentence_stdlib


def _copy(rng: random.Random, chars: int) -> list[str]:
    """Paragraphs and section headings of marketing copy, about CHARS visible characters."""
    blocks: list[str] = []
    used = 0
    while used < chars:
        if rng.random() < 0.15:
            title = rng.choice(SECTION_TITLES)
            blocks.append(f"<h2>{title}</h2>")
            used += len(title)
        text = " ".join(_sentence(rng) for _ in range(rng.randint(3, 7)))
        blocks.append(f"<p>{text}</p>")
        used += len(text)
    return blocks


def _site_rng(seed: int, host: str, part: str) -> random.Random:
    return random.Random(f"{seed}|{host}|{part}")


def boilerplate(seed: int, site: SiteSpec) -> tuple[str, str, str]:
    """The site's mega-menu, cookie banner and footer: identical on every page of the site."""
    rng = _site_rng(seed, site.host, "chrome")
    labels = list(MENU_LABELS)
    rng.shuffle(labels)
    items = [("/", "Home"), ("/about", "About us"), ("/team", "Our team"), ("/contact", "Contact")]
    items += [("/careers", "Careers")] + [(f"/#{lbl.lower().replace(' ', '-')}", lbl) for lbl in labels]
    extra = [f"{site.industry.title()} {rng.choice(WORDS)} {i}" for i in range(MENU_ITEMS - len(items))]
    items += [(f"/#m{i}", label) for i, label in enumerate(extra)]
    nav = "<nav><ul>" + "".join(f'<li><a href="{h}">{html.escape(t)}</a></li>' for h, t in items) + "</ul></nav>"
    cookie = (
        '<div class="cookie-banner"><p>We use cookies and similar technologies to give you the best '
        "experience on our website, to analyse traffic and to personalise content and advertising. By "
        "clicking Accept all you consent to our use of cookies; you can change your preferences at any "
        "time in Cookie settings. Some cookies are strictly necessary for the site to work and cannot be "
        "switched off. Read our Privacy policy and Cookie policy for details on how we process personal "
        "data under the Personal Data Protection Act 2012.</p><button>Accept all</button>"
        "<button>Reject non-essential</button><button>Cookie settings</button></div>"
    )
    company = html.escape(site.company)
    blurb = " ".join(_sentence(rng) for _ in range(rng.randint(4, 9)))
    footer = (
        f"<footer><h4>{company}</h4><p>{blurb}</p><p>Tel: {site.phone}</p>"
        "<p>Subscribe to our newsletter for industry insights, product updates and event invitations. "
        "We respect your privacy and you can unsubscribe at any time.</p>"
        '<ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li>'
        '<li><a href="/sitemap">Sitemap</a></li><li><a href="/accessibility">Accessibility</a></li></ul>'
        f"<p>Copyright 2025 {company}. All rights reserved. Registered in Singapore.</p></footer>"
    )
    return nav, cookie, footer


def _facts_html(site: SiteSpec, path: str) -> str:
    e = html.escape
    if path == "/":
        return (
            f"<h1>{e(site.company)}</h1><p>{e(site.company)} is a Singapore company in {site.industry}, "
            "serving customers across Southeast Asia.</p>"
        )
    if path == "/about":
        founder = site.people[0]
        return (
            f"<h1>About {e(site.company)}</h1><p>Founded by {e(founder.name)}, we are a team of "
            f"{len(site.people) * 7} specialists in {site.industry}.</p>"
        )
    if path == "/contact":
        emails = (
            f'<p>Email: <a href="mailto:info@{site.host}">info@{site.host}</a> | sales@{site.host}</p>'
            if site.with_emails
            else "<p>Use our contact form.</p>"
        )
        return f"<h1>Contact us</h1><p>Call us at {site.phone}.</p>{emails}<address>1 Sandbox Road</address>"
    if path == "/team":
        rows = "".join(
            f'<li class="person"><h3>{e(p.name)}</h3><p class="title">{e(p.title)}</p>'
            + (f'<a href="mailto:{p.email}">{p.email}</a>' if site.with_emails else "")
            + "</li>"
            for p in site.people
        )
        return f"<h1>Our team</h1><ul>{rows}</ul>"
    return "<h1>Careers</h1><p>We are hiring sales executives and engineers. Join us!</p>"


@functools.cache
def _script_stock() -> str:
    """SCRIPT_STOCK_BYTES of inline-script text (a tag manager, a theme bundle, JSON state), made
    once per process: each page serves a slice of it, so a 400 KB page costs a copy, not the
    ~10,000 random draws that generating it cost (the simulator's largest CPU use)."""
    rng = random.Random(0x5C21)
    parts: list[str] = []
    used = 0
    n = 0
    while used < SCRIPT_STOCK_BYTES:
        part = f"var _{n}=function(a,b){{return a&&b?a[{rng.randint(0, 99)}]+b:'{rng.choice(WORDS)}'}};"
        parts.append(part)
        used += len(part)
        n += 1
    return "".join(parts)


def _scripts(rng: random.Random, nbytes: int) -> str:
    """Inline scripts of about NBYTES bytes, in SCRIPT_CHUNK pieces, from the stock at a page's own offset."""
    stock = _script_stock()
    chunks: list[str] = []
    used = 0
    while used < nbytes:
        start = rng.randrange(len(stock) - SCRIPT_CHUNK)
        chunk = f"<script>{stock[start : start + SCRIPT_CHUNK]}</script>"
        chunks.append(chunk)
        used += len(chunk)
    return "".join(chunks)


def realistic_page(seed: int, site: SiteSpec, path: str) -> str:
    """One page of a realistic site: boilerplate, copy with the facts inside it, heavy scripts."""
    rng = _site_rng(seed, site.host, path)
    nav, cookie, footer = boilerplate(seed, site)
    copy = _copy(rng, _log_uniform(rng, PAGE_TEXT_CHARS))
    at = int(len(copy) * FACT_DEPTH.get(path, 0.5))
    main = "".join(copy[:at]) + _facts_html(site, path) + "".join(copy[at:])
    head = (
        f"<!doctype html><html><head><title>{html.escape(site.company)}</title>"
        f'<meta name="description" content="{html.escape(site.company)} - {site.industry}">'
    )
    page = f"{head}</head><body>{cookie}{nav}<main>{main}</main>{footer}</body></html>"
    target = _log_uniform(rng, PAGE_HTML_BYTES)
    scripts = _scripts(rng, target - len(page)) if target > len(page) else ""
    return page.replace("</head>", scripts + "</head>", 1)
