"""Tests of leadgen_core.scoring.

Scoring is pure domain code, so these tests are pure too: they build inputs in memory and call
the real functions. Nothing is simulated or mocked, and there is no I/O except one subprocess
that checks the package imports without dagster.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
from pydantic import ValidationError

from leadgen_core.errors import ConfigError
from leadgen_core.scoring import (
    DEFAULT_WEIGHTS,
    FEATURE_NAMES,
    BucketThresholds,
    Contact,
    LeadFeatures,
    ScoreWeights,
    ScoringInputs,
    classify_title,
    clean_llm_rationale,
    compute_features,
    is_freemail,
    parse_weights,
    rationale_prompt,
    score_lead,
    template_rationale,
)
from leadgen_core.scoring.rationale import MAX_RATIONALE_CHARS
from leadgen_core.settings import Settings

YEAR = 2025


def features_of(inputs: ScoringInputs, *, policy: str = "low_confidence") -> LeadFeatures:
    return compute_features(inputs, today_year=YEAR, freemail_policy=policy)


def strong_inputs(**overrides: object) -> ScoringInputs:
    base: dict[str, object] = {
        "icp_match": True,
        "icp_rule": "ssic_exact",
        "icp_detail": "62011",
        "employees_est": 45,
        "employee_range": (10, 200),
        "incorporation_year": 2012,
        "has_website": True,
        "crawl_status": "ok",
        "pages_crawled": 2,
        "text_chars": 1500,
        "has_description": True,
        "has_industry": True,
        "contacts": (Contact(email="jane@acme.sg", title="Founder & CEO", source="lusha", verification="valid"),),
    }
    base.update(overrides)
    return ScoringInputs.model_validate(base)


def email_only(email: str, tier: str | None = None, *, title: str | None = None) -> ScoringInputs:
    return ScoringInputs(contacts=(Contact.model_validate({"email": email, "title": title, "source": "crawl",
                                                           "verification": tier}),))  # fmt: skip


# --- contact seniority ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("CEO", "decision_maker"),
        ("Founder & CEO", "decision_maker"),
        ("c.e.o.", "decision_maker"),
        ("Managing Director", "decision_maker"),
        ("Owner", "decision_maker"),
        ("Co-Founder", "decision_maker"),
        ("Sales Director", "decision_maker"),
        ("President", "decision_maker"),
        ("Geschäftsführer", "decision_maker"),
        ("Directeur Général", "decision_maker"),
        ("总经理", "decision_maker"),
        ("Pengarah Urusan", "decision_maker"),
        ("Vice President, Sales", "manager"),
        ("VP Engineering", "manager"),
        ("Head of Marketing", "manager"),
        ("Operations Manager", "manager"),
        ("Gerente de Ventas", "manager"),
        ("Executive Assistant to the CEO", "manager"),
        ("Assistant Manager", "other"),
        ("Software Engineer", "other"),
        ("Accountant", "other"),
        ("Directory Clerk", "other"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_classify_title(title: str | None, expected: str | None) -> None:
    assert classify_title(title) == expected


@pytest.mark.parametrize(
    ("titles", "expected"),
    [
        (("Engineer", "Head of Sales", "Chief Financial Officer"), 1.0),
        (("Engineer", "Sales Manager"), 0.6),
        (("Engineer",), 0.3),
        ((None,), 0.0),
        ((), 0.0),
    ],
)
def test_contact_seniority_takes_the_most_senior_title(titles: tuple[str | None, ...], expected: float) -> None:
    contacts = tuple(Contact(title=t, source="extraction") for t in titles)
    assert features_of(ScoringInputs(contacts=contacts)).contact_seniority == expected


# --- email tier and free-mail -----------------------------------------------------------------


def test_email_tier_ordering() -> None:
    value = {tier: features_of(email_only("a@acme.sg", tier)).email_tier for tier in
             ("valid", "catch-all", "unknown", None, "invalid")}  # fmt: skip
    assert value["valid"] == 1.0
    assert value["valid"] > value["catch-all"] > value["unknown"] > value[None] > value["invalid"] == 0.0


@pytest.mark.parametrize("tier", ["invalid", "do_not_mail", "spamtrap", "abuse"])
def test_undeliverable_tiers_score_zero(tier: str) -> None:
    features = features_of(email_only("a@acme.sg", tier))
    assert features.email_tier == 0.0
    assert features.best_email_tier == tier


def test_no_email_scores_zero_email_tier() -> None:
    features = features_of(ScoringInputs(contacts=(Contact(title="CEO", source="crawl"),)))
    assert features.email_tier == 0.0
    assert features.best_email_tier is None


def test_best_email_wins_and_prefers_the_senior_owner_on_ties() -> None:
    contacts = (
        Contact(email="info@acme.sg", title=None, source="crawl", verification="catch-all"),
        Contact(email="bob@acme.sg", title="Engineer", source="lusha", verification="valid"),
        Contact(email="ann@acme.sg", title="Managing Director", source="lusha", verification="valid"),
    )
    features = features_of(ScoringInputs(contacts=contacts))
    assert features.email_tier == 1.0
    assert features.best_email_tier == "valid"
    assert features.best_email_seniority == "decision_maker"


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("jane@gmail.com", True),
        ("Jane.Doe@GMAIL.COM", True),
        ("x@yahoo.com.sg", True),
        ("x@hotmail.co.uk", True),
        ("x@outlook.com", True),
        ("x@qq.com", True),
        ("x@live.com", True),
        ("x@icloud.com", True),
        ("gmail.com", True),
        ("x@acme.sg", False),
        ("x@yahoo.example.org", False),
        ("x@mygmail.com", False),
        ("not an email", False),
        ("", False),
    ],
)
def test_is_freemail(email: str, expected: bool) -> None:
    assert is_freemail(email) is expected


def test_freemail_policy_exclude_drops_freemail() -> None:
    features = features_of(email_only("ceo@gmail.com", "valid", title="CEO"), policy="exclude")
    assert features.email_tier == 0.0
    assert features.best_email_tier is None


def test_freemail_policy_low_confidence_caps_the_tier() -> None:
    features = features_of(email_only("ceo@gmail.com", "valid", title="CEO"), policy="low_confidence")
    assert features.email_tier == 0.3
    assert features.best_email_freemail is True


def test_freemail_exclude_still_uses_the_corporate_address() -> None:
    contacts = (
        Contact(email="ceo@gmail.com", title="CEO", source="crawl", verification="valid"),
        Contact(email="sales@acme.sg", title=None, source="crawl", verification="catch-all"),
    )
    excluded = features_of(ScoringInputs(contacts=contacts), policy="exclude")
    kept = features_of(ScoringInputs(contacts=contacts), policy="LOW_CONFIDENCE")
    assert excluded.email_tier == 0.6
    assert excluded.best_email_freemail is False
    assert kept.email_tier == 0.6  # the capped free-mail (0.3) loses to the corporate catch-all


def test_upstream_freemail_flag_overrides_the_domain_list() -> None:
    flagged = Contact(email="me@acme.sg", source="crawl", verification="valid", freemail=True)
    cleared = Contact(email="me@gmail.com", source="crawl", verification="valid", freemail=False)
    assert features_of(ScoringInputs(contacts=(flagged,)), policy="exclude").email_tier == 0.0
    assert features_of(ScoringInputs(contacts=(cleared,)), policy="exclude").email_tier == 1.0


def test_unknown_freemail_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="freemail_policy"):
        compute_features(ScoringInputs(), today_year=YEAR, freemail_policy="allow")


# --- ICP, size, age, completeness, web ----------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "rule", "expected"),
    [(True, "ssic_exact", 1.0), (True, "ssic_prefix", 0.8), (True, "term", 0.6), (True, None, 0.6), (False, None, 0.0)],
)
def test_icp_fit_by_rule(match: bool, rule: str | None, expected: float) -> None:
    inputs = ScoringInputs.model_validate({"icp_match": match, "icp_rule": rule})
    assert features_of(inputs).icp_fit == expected


def test_icp_rule_without_match_is_rejected() -> None:
    with pytest.raises(ValidationError, match="icp_match"):
        ScoringInputs(icp_match=False, icp_rule="ssic_exact")


@pytest.mark.parametrize(
    ("employees", "employee_range", "expected"),
    [
        (45, (10, 200), 1.0),
        (10, (10, 200), 1.0),
        (200, (10, 200), 1.0),
        (400, (10, 200), 0.4),  # one octave above: 0.6 * (1 - 1/3)
        (5, (10, 200), 0.4),  # one octave below
        (1600, (10, 200), 0.0),  # three octaves above
        (0, (10, 200), 0.0),
        (45, None, 1.0),
        (None, (10, 200), 0.3),
        (None, None, 0.3),
    ],
)
def test_size_fit(employees: int | None, employee_range: tuple[int, int] | None, expected: float) -> None:
    inputs = ScoringInputs(employees_est=employees, employee_range=employee_range)
    assert features_of(inputs).size_fit == pytest.approx(expected, abs=1e-4)


def test_size_fit_ranks_in_range_above_near_miss_above_unknown_above_far_miss() -> None:
    def size(est: int | None) -> float:
        return features_of(ScoringInputs(employees_est=est, employee_range=(10, 200))).size_fit

    assert size(100) > size(210) > size(None) > size(5000)


@pytest.mark.parametrize(
    ("year", "year_range", "expected"),
    [
        (None, None, 0.3),
        (YEAR, None, 0.2),
        (YEAR + 3, None, 0.2),  # a future year is treated as a new company, not an error
        (YEAR - 2, None, 0.52),
        (YEAR - 5, None, 1.0),
        (1990, None, 1.0),
        (2010, (2005, 2015), 1.0),
        (2000, (2005, 2015), 0.3),  # five years outside: 0.6 * (1 - 5/10)
        (1980, (2005, 2015), 0.0),
        (None, (2005, 2015), 0.3),
    ],
)
def test_age(year: int | None, year_range: tuple[int, int] | None, expected: float) -> None:
    inputs = ScoringInputs(incorporation_year=year, year_range=year_range)
    assert features_of(inputs).age == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("bad_range", [(200, 10), (-1, 5)])
def test_ranges_must_be_ordered_and_non_negative(bad_range: tuple[int, int]) -> None:
    with pytest.raises(ValidationError, match="employee_range"):
        ScoringInputs(employee_range=bad_range)


def test_data_completeness_counts_seven_facts() -> None:
    assert features_of(ScoringInputs()).data_completeness == 0.0
    partial = ScoringInputs(has_description=True, has_hq=True, employees_est=3)
    assert features_of(partial).data_completeness == pytest.approx(3 / 7, abs=1e-4)
    full = ScoringInputs(
        has_description=True, has_industry=True, has_products=True, has_hq=True, employees_est=3,
        incorporation_year=2000, contacts=(Contact(email="a@acme.sg", source="crawl"),),
    )  # fmt: skip
    assert features_of(full).data_completeness == 1.0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 0.0),
        ({"has_website": True, "crawl_status": "failed"}, 0.30),
        ({"has_website": True, "crawl_status": "partial", "pages_crawled": 1}, 0.455),
        ({"has_website": True, "crawl_status": "OK", "pages_crawled": 9, "text_chars": 9000, "social_links": 4}, 1.0),
        ({"social_links": 3}, 0.15),
    ],
)
def test_web_presence(kwargs: dict[str, object], expected: float) -> None:
    assert features_of(ScoringInputs.model_validate(kwargs)).web_presence == pytest.approx(expected, abs=1e-4)


def test_missing_data_gives_low_but_valid_features() -> None:
    values = features_of(ScoringInputs()).feature_values()
    assert values == {
        "icp_fit": 0.0, "size_fit": 0.3, "age": 0.3, "data_completeness": 0.0,
        "email_tier": 0.0, "contact_seniority": 0.0, "web_presence": 0.0,
    }  # fmt: skip


# --- score ------------------------------------------------------------------------------------


def test_default_weights_cover_every_feature_and_sum_to_one() -> None:
    assert set(DEFAULT_WEIGHTS) == set(FEATURE_NAMES)
    assert math.fsum(DEFAULT_WEIGHTS.values()) == pytest.approx(1.0, abs=1e-12)
    assert ScoreWeights().normalized() == pytest.approx(dict(DEFAULT_WEIGHTS))


CASES = [
    ScoringInputs(),
    strong_inputs(),
    strong_inputs(employees_est=5000, crawl_status="failed", contacts=()),
    strong_inputs(icp_match=False, icp_rule=None, incorporation_year=None),
    email_only("x@gmail.com", "catch-all", title="Intern"),
]


@pytest.mark.parametrize("inputs", CASES)
@pytest.mark.parametrize("weights", [ScoreWeights(), ScoreWeights(age=3, web_presence=0, icp_fit=1 / 3)])
def test_score_is_bounded_and_contributions_add_up(inputs: ScoringInputs, weights: ScoreWeights) -> None:
    features = features_of(inputs)
    result = score_lead(features, weights=weights)
    assert 0.0 <= result.score <= 1.0
    assert result.score == round(result.score, 4)
    assert set(result.contributions) == set(FEATURE_NAMES)
    assert math.fsum(result.contributions.values()) == pytest.approx(result.score, abs=1e-9)
    normalized = weights.normalized()
    for name, value in features.feature_values().items():
        assert result.contributions[name] >= 0.0
        assert result.contributions[name] == pytest.approx(normalized[name] * value, abs=1e-4)


def test_perfect_and_empty_features_score_one_and_zero() -> None:
    ones = LeadFeatures.model_validate(dict.fromkeys(FEATURE_NAMES, 1.0))
    zeros = LeadFeatures.model_validate(dict.fromkeys(FEATURE_NAMES, 0.0))
    assert score_lead(ones).score == 1.0
    assert score_lead(ones).bucket == "high"
    assert score_lead(zeros).score == 0.0
    assert score_lead(zeros).bucket == "low"


def test_weights_are_relative_and_normalized() -> None:
    only_icp = ScoreWeights(icp_fit=2, size_fit=0, age=0, data_completeness=0, email_tier=0,
                            contact_seniority=0, web_presence=0)  # fmt: skip
    features = features_of(strong_inputs(icp_rule="ssic_prefix"))
    result = score_lead(features, weights=only_icp)
    assert result.score == 0.8
    assert result.weights["icp_fit"] == 1.0
    assert result.contributions["icp_fit"] == 0.8


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"bogus": 0.1}, "bogus"), ({"age": -0.1}, "age"), ({"email_tier": math.inf}, "email_tier")],
)
def test_weight_errors_name_the_field(raw: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScoreWeights.model_validate(raw)
    assert [err["loc"] for err in caught.value.errors()] == [(field,)]
    with pytest.raises(ConfigError, match=f"{field}: "):
        parse_weights(raw)


def test_all_zero_weights_are_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one weight must be positive"):
        ScoreWeights.model_validate(dict.fromkeys(FEATURE_NAMES, 0))
    with pytest.raises(ConfigError, match="at least one weight must be positive"):
        parse_weights(dict.fromkeys(FEATURE_NAMES, 0.0))


def test_parse_weights_defaults_and_partial_overrides() -> None:
    assert parse_weights(None) == ScoreWeights()
    assert parse_weights({"age": 0.5}).age == 0.5
    assert parse_weights({"age": 0.5}).icp_fit == DEFAULT_WEIGHTS["icp_fit"]


def test_default_high_threshold_is_the_export_threshold() -> None:
    assert BucketThresholds().high == Settings.model_fields["score_min_export"].default == 0.66
    assert BucketThresholds().medium == 0.40


@pytest.mark.parametrize(
    ("score", "bucket"),
    [(1.0, "high"), (0.66, "high"), (0.6599, "medium"), (0.40, "medium"), (0.3999, "low"), (0.0, "low")],
)
def test_default_buckets(score: float, bucket: str) -> None:
    assert BucketThresholds().bucket(score) == bucket


def test_custom_thresholds_change_the_bucket() -> None:
    features = features_of(strong_inputs(employees_est=5000, crawl_status="failed", contacts=()))
    default = score_lead(features)
    strict = score_lead(features, thresholds=BucketThresholds(high=0.95, medium=default.score + 0.01))
    assert default.bucket == "medium"
    assert strict.bucket == "low"
    assert strict.thresholds.high == 0.95


@pytest.mark.parametrize(("high", "medium"), [(0.4, 0.4), (0.3, 0.5), (1.2, 0.4)])
def test_invalid_thresholds_are_rejected(high: float, medium: float) -> None:
    with pytest.raises(ValidationError):
        BucketThresholds(high=high, medium=medium)


# --- determinism ------------------------------------------------------------------------------


def test_features_and_hash_are_deterministic() -> None:
    first, second = features_of(strong_inputs()), features_of(strong_inputs())
    assert first == second
    assert first.feature_hash() == second.feature_hash()
    assert len(first.feature_hash()) == 64
    assert LeadFeatures.model_validate(first.model_dump()).feature_hash() == first.feature_hash()
    assert score_lead(first) == score_lead(second)


@pytest.mark.parametrize(
    "change",
    [{"employees_est": 5000}, {"icp_rule": "term"}, {"icp_detail": "62012"}, {"social_links": 1},
     {"contacts": (Contact(email="jane@acme.sg", title="Engineer", source="lusha", verification="valid"),)}],
)  # fmt: skip
def test_changed_input_changes_the_hash(change: dict[str, object]) -> None:
    assert features_of(strong_inputs(**change)).feature_hash() != features_of(strong_inputs()).feature_hash()


# --- rationale --------------------------------------------------------------------------------


def test_template_rationale_names_top_and_weakest_with_values() -> None:
    features = features_of(strong_inputs())
    result = score_lead(features)
    text = template_rationale(company_name="Acme Pte Ltd", score=result, features=features)
    assert text.startswith(f"Acme Pte Ltd: high ({result.score:.2f}).")
    assert "Strong ICP fit (SSIC 62011 matches, 1.00)" in text
    assert "verified decision-maker email (1.00)" in text
    # web presence is the weakest feature here: 0.30 + 0.25 + 0.06 + 0.045
    assert features.web_presence == 0.655
    assert text.endswith("; weakest: moderate web presence (0.66).")
    assert len(text) <= MAX_RATIONALE_CHARS
    assert template_rationale(company_name="Acme Pte Ltd", score=result, features=features) == text


def test_template_rationale_follows_the_top_contributor() -> None:
    features = features_of(ScoringInputs(has_website=True, crawl_status="ok", pages_crawled=5, social_links=3))
    weights = ScoreWeights(web_presence=5)
    result = score_lead(features, weights=weights)
    text = template_rationale(company_name="Webby", score=result, features=features)
    assert max(result.contributions, key=lambda name: result.contributions[name]) == "web_presence"
    assert text.startswith(f"Webby: {result.bucket} ({result.score:.2f}).")
    assert ". Strong web presence (0.85)" in text
    assert "weakest: no ICP fit (0.00)" in text


def test_template_rationale_stays_under_the_cap() -> None:
    features = features_of(strong_inputs(icp_detail="x" * 200, icp_rule="term"))
    text = template_rationale(company_name="Enormous " * 60, score=score_lead(features), features=features)
    assert len(text) <= MAX_RATIONALE_CHARS
    assert "ICP fit (term 'xxxx" in text
    assert "x" * 41 not in text  # the ICP detail is clipped to 40 characters
    assert "Enormous " * 10 not in text  # the name is clipped to 80 characters


def test_rationale_prompt_is_grounded_in_the_features() -> None:
    features = features_of(strong_inputs())
    result = score_lead(features)
    system, user = rationale_prompt(company_name="Acme Pte Ltd", score=result, features=features)
    assert "ONLY the facts" in system
    assert "60 words" in system
    data = json.loads(user.split("\n", 1)[1])
    assert data["company"] == "Acme Pte Ltd"
    assert data["score"] == round(result.score, 2)  # two decimals, as every rationale prints it
    assert set(data["features"]) == set(FEATURE_NAMES)
    assert data["features"]["icp_fit"]["contribution"] == result.contributions["icp_fit"]
    assert data["facts"]["icp_detail"] == "62011"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Strong ICP fit and\n\n a verified   founder email.  ", "Strong ICP fit and a verified founder email."),
        ('Rationale: "Good industry fit, weak web presence."', "Good industry fit, weak web presence."),
        ("```\nStrong ICP fit; verified email.\n```", "Strong ICP fit; verified email."),
        (None, None),
        ("", None),
        ("   \n ", None),
        ("Good fit.", None),  # too short to be a rationale
        ("I'm sorry, but I cannot help with scoring this lead.", None),
        ("As an AI language model I have no opinion on this email.", None),
        ("Here is a recipe for banana bread with walnuts.", None),
        ("Strong ICP fit, see https://acme.example for details.", None),
    ],
)
def test_clean_llm_rationale(raw: str | None, expected: str | None) -> None:
    assert clean_llm_rationale(raw) == expected


def test_clean_llm_rationale_caps_long_output() -> None:
    sentence = "The lead has a strong ICP fit and a verified decision-maker email. "
    cleaned = clean_llm_rationale(sentence * 20)
    assert cleaned is not None
    assert len(cleaned) <= MAX_RATIONALE_CHARS
    assert cleaned.endswith("email.")
    unbroken = clean_llm_rationale("strong ICP fit " + "word " * 200)
    assert unbroken is not None
    assert len(unbroken) <= MAX_RATIONALE_CHARS
    assert unbroken.endswith("word…")


def test_scoring_imports_without_dagster() -> None:
    code = "import sys, leadgen_core.scoring; sys.exit(1 if 'dagster' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_llm_and_template_rationales_read_alike_with_two_decimals() -> None:
    """The sandbox LLM answers from the payload the way the prompt asks: the template's shape and
    numbers with two decimals, so a night's table reads the same whichever source wrote a line."""
    from leadgen_core.sandbox.openai_sim import _lead_line
    from leadgen_core.scoring.rationale import rationale_payload

    features = features_of(strong_inputs())
    result = score_lead(features)
    template = template_rationale(company_name="Acme Pte Ltd", score=result, features=features)
    payload = rationale_payload(company_name="Acme Pte Ltd", score=result, features=features)
    llm = _lead_line({"ref": "L1", **payload}).removeprefix("L1: ")
    head = f"Acme Pte Ltd: high ({result.score:.2f}). "
    assert template.startswith(head) and llm.startswith(head)
    assert "; weakest: " in template and "; weakest: " in llm
    for text in (template, llm, json.dumps(payload)):
        assert not re.search(r"\d\.\d{3,}", text), text  # no score or value with more than 2 decimals
