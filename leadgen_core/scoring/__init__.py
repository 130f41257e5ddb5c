"""Pure, transparent lead scoring: features in [0, 1], a weighted score, and a rationale.

    inputs = ScoringInputs(...)                       # what the pipeline knows about a company
    features = compute_features(inputs, today_year=2025, freemail_policy="low_confidence")
    result = score_lead(features, weights=ScoreWeights())
    text = template_rationale(company_name="Acme Pte Ltd", score=result, features=features)

No I/O and no clock: callers pass the year and the free-mail policy from `Settings`.
"""

from __future__ import annotations

from leadgen_core.scoring.features import (
    FEATURE_NAMES,
    Contact,
    LeadFeatures,
    ScoringInputs,
    classify_title,
    compute_features,
)
from leadgen_core.scoring.freemail import FREEMAIL_DOMAINS, is_freemail
from leadgen_core.scoring.rationale import clean_llm_rationale, rationale_prompt, template_rationale
from leadgen_core.scoring.score import (
    DEFAULT_WEIGHTS,
    BucketThresholds,
    LeadScore,
    ScoreWeights,
    parse_weights,
    score_lead,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_NAMES",
    "FREEMAIL_DOMAINS",
    "BucketThresholds",
    "Contact",
    "LeadFeatures",
    "LeadScore",
    "ScoreWeights",
    "ScoringInputs",
    "classify_title",
    "clean_llm_rationale",
    "compute_features",
    "is_freemail",
    "parse_weights",
    "rationale_prompt",
    "score_lead",
    "template_rationale",
]
