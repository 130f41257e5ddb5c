"""What the pipeline knows about one company for one tenant, turned into named features in [0, 1].

`ScoringInputs` is the raw evidence (ICP match, size, age, crawl results, contacts and their
verification tiers); `compute_features` turns it into `LeadFeatures`, seven numbers with a
documented formula each, plus the few facts a rationale needs to explain them. Everything here
is pure: no I/O, no clock (the caller passes `today_year`), no randomness.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadgen_core.errors import ConfigError
from leadgen_core.scoring.freemail import is_freemail

FEATURE_NAMES: tuple[str, ...] = (
    "icp_fit",
    "size_fit",
    "age",
    "data_completeness",
    "email_tier",
    "contact_seniority",
    "web_presence",
)
# Bumped whenever a formula changes, so rationales cached under an old hash are not reused.
FEATURE_VERSION = 1
FEATURE_PRECISION = 4

ICP_RULE_VALUES: dict[str, float] = {"ssic_exact": 1.0, "ssic_prefix": 0.8, "term": 0.6}
ICP_MATCH_UNKNOWN_RULE = 0.6
MISSING_VALUE = 0.3  # size or age unknown: below any in-range value, above a clear miss
OUT_OF_RANGE_CAP = 0.6  # just outside the tenant's range still beats unknown, never an in-range hit
SIZE_DECAY_OCTAVES = 3.0  # 2**3 = 8x beyond the range bound scores 0
YEAR_DECAY_YEARS = 10.0
AGE_FLOOR = 0.2
AGE_MATURE_YEARS = 5
# A site that exists and was crawled counts most; volume and social links only refine it.
WEB_PRESENCE_WEIGHTS: dict[str, float] = {"website": 0.30, "crawl": 0.25, "pages": 0.15, "text": 0.15, "social": 0.15}
WEB_FULL_PAGES = 5
WEB_FULL_TEXT_CHARS = 5000
WEB_FULL_SOCIAL = 3

# ZeroBounce statuses; "unverified" is our own tier for an address never checked.
TIER_VALUES: dict[str, float] = {
    "valid": 1.0, "catch-all": 0.6, "unknown": 0.35, "unverified": 0.3,
    "invalid": 0.0, "do_not_mail": 0.0, "spamtrap": 0.0, "abuse": 0.0,
}  # fmt: skip
FREEMAIL_TIER_CAP = 0.3
FREEMAIL_POLICIES: frozenset[str] = frozenset({"exclude", "low_confidence"})

SENIORITY_VALUES: dict[str, float] = {"decision_maker": 1.0, "manager": 0.6, "other": 0.3}
SENIORITY_RANKS: dict[str, int] = {"decision_maker": 3, "manager": 2, "other": 1}
DECISION_MAKER_KEYWORDS: tuple[str, ...] = (
    "ceo", "cfo", "coo", "cto", "cmo", "cio", "cso", "cro", "cpo", "chief", "founder", "co-founder",
    "cofounder", "owner", "co-owner", "proprietor", "president", "director", "md", "general manager",
    "managing partner", "founding partner", "senior partner", "principal", "chairman", "chairwoman",
    "chairperson", "directeur", "directrice", "fondateur", "fondatrice", "gérant", "pdg",
    "propriétaire", "président", "geschäftsführer", "geschaeftsfuehrer", "inhaber", "gründer",
    "vorstand", "direktor", "direktur", "fundador", "fundadora", "presidente", "dueño", "propietario",
    "gerente general", "socio", "pengarah", "pengasas", "pemilik", "pendiri",
    "总经理", "董事", "创始人", "老板", "社長", "代表取締役", "대표", "사장",
)  # fmt: skip
MANAGER_KEYWORDS: tuple[str, ...] = (
    "head", "vp", "svp", "evp", "avp", "manager", "lead", "supervisor", "gerente", "responsable",
    "jefe", "jefa", "leiter", "leiterin", "manajer", "pengurus", "经理", "主管", "部長", "팀장",
)  # fmt: skip
# Helpers of a senior person are not that person: an assistant's class drops one level.
JUNIOR_MARKERS: tuple[str, ...] = ("assistant", "asst", "intern", "trainee", "secretary", "junior")

TitleClass = Literal["decision_maker", "manager", "other"]
IcpRule = Literal["ssic_exact", "ssic_prefix", "term"]
VerificationTier = Literal["valid", "catch-all", "unknown", "invalid", "do_not_mail", "spamtrap", "abuse"]
ContactSource = Literal["crawl", "extraction", "lusha"]

_VICE_RE = re.compile(r"vice[\s-]+(?:president[e]?|président|chair\w*)")
_SEPARATORS_RE = re.compile(r"[.,/&|()]+")
_CRAWL_OK = frozenset({"ok", "success", "succeeded", "done", "complete", "completed"})
_CRAWL_PARTIAL = frozenset({"partial"})


def _keyword_matcher(keywords: tuple[str, ...]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    # CJK scripts have no spaces, so word boundaries cannot apply; those match as substrings.
    spaced = [k for k in keywords if all(ord(ch) < 0x2E80 for ch in k)]
    unspaced = tuple(k for k in keywords if k not in spaced)
    alternation = "|".join(re.escape(k) for k in sorted(spaced, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)"), unspaced


_TOP_RE, _TOP_CJK = _keyword_matcher(DECISION_MAKER_KEYWORDS)
_MID_RE, _MID_CJK = _keyword_matcher(MANAGER_KEYWORDS)
_JUNIOR_RE, _ = _keyword_matcher(JUNIOR_MARKERS)


def classify_title(title: str | None) -> TitleClass | None:
    """Seniority class of a job title: decision_maker > manager > other; None for no title.

    Case-insensitive keyword match (English plus common French, German, Spanish, Malay,
    Indonesian, Chinese, Japanese and Korean words). "Vice president" counts as manager level.
    A junior marker (assistant, intern, secretary, ...) lowers the class one level.
    """
    if title is None or not title.strip():
        return None
    text = _SEPARATORS_RE.sub(" ", title.lower().replace("c.e.o", "ceo"))
    text = _VICE_RE.sub(" vp ", text)
    level: TitleClass
    if _TOP_RE.search(text) or any(k in text for k in _TOP_CJK):
        level = "decision_maker"
    elif _MID_RE.search(text) or any(k in text for k in _MID_CJK):
        level = "manager"
    else:
        return "other"
    if _JUNIOR_RE.search(text):
        return "manager" if level == "decision_maker" else "other"
    return level


class Contact(BaseModel):
    """One known person or mailbox at the company.

    `verification` is the verifier's tier for `email` (None: never verified). `freemail` is an
    upstream flag; None means "decide from the domain" with `is_freemail`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str | None = None
    title: str | None = None
    source: ContactSource
    verification: VerificationTier | None = None
    freemail: bool | None = None

    @field_validator("email")
    @classmethod
    def _normalize_email(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        return value or None


class ScoringInputs(BaseModel):
    """The evidence about one company for one tenant.

    `employee_range` and `year_range` are the tenant's ICP windows (inclusive, min <= max) for
    head-count and incorporation year; None means the tenant has no preference.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    icp_match: bool = False
    icp_rule: IcpRule | None = None
    icp_detail: str | None = Field(default=None, max_length=200)
    employees_est: int | None = Field(default=None, ge=0)
    employee_range: tuple[int, int] | None = None
    incorporation_year: int | None = Field(default=None, ge=1800, le=2200)
    year_range: tuple[int, int] | None = None
    has_website: bool = False
    crawl_status: str = "not_crawled"
    pages_crawled: int = Field(default=0, ge=0)
    text_chars: int = Field(default=0, ge=0)
    has_description: bool = False
    has_industry: bool = False
    has_products: bool = False
    has_hq: bool = False
    contacts: tuple[Contact, ...] = ()
    social_links: int = Field(default=0, ge=0)

    @field_validator("employee_range", "year_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] <= value[1]:
            raise ValueError("range must be (min, max) with 0 <= min <= max")
        return value

    @model_validator(mode="after")
    def _rule_needs_match(self) -> ScoringInputs:
        if self.icp_rule is not None and not self.icp_match:
            raise ValueError("icp_rule is set but icp_match is false")
        return self


class LeadFeatures(BaseModel):
    """Seven features in [0, 1] (see `compute_features`) and the facts that explain them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    icp_fit: float = Field(ge=0, le=1)
    size_fit: float = Field(ge=0, le=1)
    age: float = Field(ge=0, le=1)
    data_completeness: float = Field(ge=0, le=1)
    email_tier: float = Field(ge=0, le=1)
    contact_seniority: float = Field(ge=0, le=1)
    web_presence: float = Field(ge=0, le=1)
    # explanatory facts, for rationales; they are part of the hash because they change the text
    icp_rule: IcpRule | None = None
    icp_detail: str | None = None
    employees_est: int | None = None
    age_years: int | None = None
    best_email_tier: str | None = None
    best_email_freemail: bool = False
    best_email_seniority: TitleClass | None = None
    top_seniority: TitleClass | None = None

    def feature_values(self) -> dict[str, float]:
        """The seven features by name, in `FEATURE_NAMES` order."""
        return {name: float(getattr(self, name)) for name in FEATURE_NAMES}

    def feature_hash(self) -> str:
        """sha256 hex of the canonical JSON (sorted keys, values rounded) of features and facts."""
        payload = self.model_dump(mode="json")
        for name in FEATURE_NAMES:
            payload[name] = round(payload[name], FEATURE_PRECISION)
        payload["_version"] = FEATURE_VERSION
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _range_fit(value: float, low: float, high: float, *, decay: float, log_scale: bool) -> float:
    if low <= value <= high:
        return 1.0
    if log_scale:
        distance = math.log2(max(low, 1) / max(value, 1)) if value < low else math.log2(value / max(high, 1))
    else:
        distance = (low - value) if value < low else (value - high)
    return OUT_OF_RANGE_CAP * max(0.0, 1.0 - distance / decay)


def _icp_fit(inputs: ScoringInputs) -> float:
    """0 without an ICP match; else by rule: ssic_exact 1.0, ssic_prefix 0.8, term 0.6 (no rule: 0.6)."""
    if not inputs.icp_match:
        return 0.0
    return ICP_RULE_VALUES[inputs.icp_rule] if inputs.icp_rule else ICP_MATCH_UNKNOWN_RULE


def _size_fit(inputs: ScoringInputs) -> float:
    """0.3 when head-count is unknown; 1.0 inside `employee_range` (or with no range); outside:
    0.6 * max(0, 1 - octaves / 3), octaves = log2(min / est) below or log2(est / max) above."""
    if inputs.employees_est is None:
        return MISSING_VALUE
    if inputs.employee_range is None:
        return 1.0
    low, high = inputs.employee_range
    return _range_fit(inputs.employees_est, low, high, decay=SIZE_DECAY_OCTAVES, log_scale=True)


def _age(inputs: ScoringInputs, age_years: int | None) -> float:
    """0.3 when the year is unknown; with `year_range`: 1.0 inside, else 0.6 * max(0, 1 - years
    outside / 10); without: 0.2 + 0.8 * min(age_years, 5) / 5."""
    if inputs.incorporation_year is None or age_years is None:
        return MISSING_VALUE
    if inputs.year_range is not None:
        low, high = inputs.year_range
        return _range_fit(inputs.incorporation_year, low, high, decay=YEAR_DECAY_YEARS, log_scale=False)
    return AGE_FLOOR + (1 - AGE_FLOOR) * min(age_years, AGE_MATURE_YEARS) / AGE_MATURE_YEARS


def _completeness(inputs: ScoringInputs) -> float:
    """Share of 7 facts present: description, industry, products, HQ, head-count, year, a contact email."""
    facts = (inputs.has_description, inputs.has_industry, inputs.has_products, inputs.has_hq)
    known = (inputs.employees_est is not None, inputs.incorporation_year is not None)
    present = (*facts, *known, any(c.email for c in inputs.contacts))
    return sum(present) / len(present)


def _web_presence(inputs: ScoringInputs) -> float:
    """0.30 * has_website + 0.25 * crawl (ok 1, partial 0.5, else 0) + 0.15 * min(pages, 5) / 5
    + 0.15 * min(text_chars, 5000) / 5000 + 0.15 * min(social_links, 3) / 3."""
    status = inputs.crawl_status.strip().lower()
    crawl = 1.0 if status in _CRAWL_OK else 0.5 if status in _CRAWL_PARTIAL else 0.0
    parts = {
        "website": float(inputs.has_website),
        "crawl": crawl,
        "pages": min(inputs.pages_crawled, WEB_FULL_PAGES) / WEB_FULL_PAGES,
        "text": min(inputs.text_chars, WEB_FULL_TEXT_CHARS) / WEB_FULL_TEXT_CHARS,
        "social": min(inputs.social_links, WEB_FULL_SOCIAL) / WEB_FULL_SOCIAL,
    }
    return sum(WEB_PRESENCE_WEIGHTS[k] * v for k, v in parts.items())


def compute_features(inputs: ScoringInputs, *, today_year: int, freemail_policy: str) -> LeadFeatures:
    """Turn the evidence into the seven features, each clamped to [0, 1] and rounded to 4 places.

    icp_fit, size_fit, age, data_completeness and web_presence: see the `_<name>` helpers.
    email_tier: best value over the usable emails: valid 1.0, catch-all 0.6, unknown 0.35,
    unverified 0.3, invalid / do_not_mail / spamtrap / abuse 0; no email 0. Free-mail addresses
    are dropped under policy "exclude" and capped at 0.3 under "low_confidence".
    contact_seniority: best `classify_title` class over all contacts: decision-maker 1.0,
    manager 0.6, other titled 0.3; no titled contact 0.

    Raises ConfigError for a free-mail policy other than "exclude" or "low_confidence".
    """
    policy = freemail_policy.strip().lower()
    if policy not in FREEMAIL_POLICIES:
        raise ConfigError(f"freemail_policy must be 'exclude' or 'low_confidence', got {freemail_policy!r}")
    age_years = None if inputs.incorporation_year is None else max(0, today_year - inputs.incorporation_year)

    levels = [classify_title(c.title) for c in inputs.contacts]
    top_level = max(levels, key=lambda lv: SENIORITY_RANKS.get(lv or "", 0), default=None)
    # Best email: highest tier value, then the most senior owner, then the address (determinism).
    best: tuple[float, int, str] | None = None
    best_info: tuple[str, bool, TitleClass | None] | None = None
    for contact, level in zip(inputs.contacts, levels, strict=True):
        if contact.email is None:
            continue
        freemail = contact.freemail if contact.freemail is not None else is_freemail(contact.email)
        if freemail and policy == "exclude":
            continue
        tier = contact.verification or "unverified"
        value = min(TIER_VALUES[tier], FREEMAIL_TIER_CAP) if freemail else TIER_VALUES[tier]
        key = (value, SENIORITY_RANKS.get(level or "", 0), contact.email)
        if best is None or key > best:
            best, best_info = key, (tier, freemail, level)

    values = {
        "icp_fit": _icp_fit(inputs),
        "size_fit": _size_fit(inputs),
        "age": _age(inputs, age_years),
        "data_completeness": _completeness(inputs),
        "email_tier": best[0] if best else 0.0,
        "contact_seniority": SENIORITY_VALUES[top_level] if top_level else 0.0,
        "web_presence": _web_presence(inputs),
    }
    return LeadFeatures(
        **{name: round(min(1.0, max(0.0, v)), FEATURE_PRECISION) for name, v in values.items()},
        icp_rule=inputs.icp_rule,
        icp_detail=inputs.icp_detail,
        employees_est=inputs.employees_est,
        age_years=age_years,
        best_email_tier=best_info[0] if best_info else None,
        best_email_freemail=best_info[1] if best_info else False,
        best_email_seniority=best_info[2] if best_info else None,
        top_seniority=top_level,
    )
