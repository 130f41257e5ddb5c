"""A transparent lead score: a weighted sum of the features, with every term reported.

score = sum(weight_i * feature_i) over the seven features of `LeadFeatures`, with the weights
normalized to sum to 1, so the score is in [0, 1] and each contribution says how many points a
feature earned. The bucket is read off `BucketThresholds`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from leadgen_core.errors import ConfigError
from leadgen_core.scoring.features import FEATURE_NAMES, LeadFeatures

# Why these numbers: ICP fit is the tenant's own definition of a good lead, so it leads; a
# deliverable address and a senior person to write to decide whether a lead is actionable at
# all; size and completeness refine; web presence and age are weak signals for SMEs in the
# registry, so they weigh least.
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "icp_fit": 0.25,
        "email_tier": 0.20,
        "contact_seniority": 0.15,
        "size_fit": 0.12,
        "data_completeness": 0.10,
        "web_presence": 0.10,
        "age": 0.08,
    }
)
DEFAULT_HIGH_THRESHOLD = 0.66  # equals the Settings.score_min_export default: "high" means exportable
DEFAULT_MEDIUM_THRESHOLD = 0.40
SCORE_PRECISION = 4
_UNIT = 10**SCORE_PRECISION

Bucket = Literal["high", "medium", "low"]


# Weights are relative, so a bound costs nothing; without one, 1e308 overflowed the sum and every
# score of the night failed.
MAX_WEIGHT = 1000.0


class ScoreWeights(BaseModel):
    """Finite weight in [0, MAX_WEIGHT] per feature; missing keys take `DEFAULT_WEIGHTS`, unknown keys
    are rejected.

    Weights are relative: `normalized()` scales them to sum to 1, so {"icp_fit": 2, ...} works.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    icp_fit: float = Field(default=DEFAULT_WEIGHTS["icp_fit"], ge=0, le=MAX_WEIGHT)
    size_fit: float = Field(default=DEFAULT_WEIGHTS["size_fit"], ge=0, le=MAX_WEIGHT)
    age: float = Field(default=DEFAULT_WEIGHTS["age"], ge=0, le=MAX_WEIGHT)
    data_completeness: float = Field(default=DEFAULT_WEIGHTS["data_completeness"], ge=0, le=MAX_WEIGHT)
    email_tier: float = Field(default=DEFAULT_WEIGHTS["email_tier"], ge=0, le=MAX_WEIGHT)
    contact_seniority: float = Field(default=DEFAULT_WEIGHTS["contact_seniority"], ge=0, le=MAX_WEIGHT)
    web_presence: float = Field(default=DEFAULT_WEIGHTS["web_presence"], ge=0, le=MAX_WEIGHT)

    @model_validator(mode="after")
    def _some_positive(self) -> ScoreWeights:
        if not any(getattr(self, name) > 0 for name in FEATURE_NAMES):
            raise ValueError("at least one weight must be positive")
        return self

    def normalized(self) -> dict[str, float]:
        """Weights by feature name (in `FEATURE_NAMES` order), scaled to sum to 1."""
        raw = {name: float(getattr(self, name)) for name in FEATURE_NAMES}
        total = math.fsum(raw.values())
        return {name: value / total for name, value in raw.items()}


class BucketThresholds(BaseModel):
    """score >= high: "high"; score >= medium: "medium"; otherwise "low". Requires high > medium."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    high: float = Field(default=DEFAULT_HIGH_THRESHOLD, ge=0, le=1)
    medium: float = Field(default=DEFAULT_MEDIUM_THRESHOLD, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> BucketThresholds:
        if not self.high > self.medium:
            raise ValueError(f"high ({self.high}) must be greater than medium ({self.medium})")
        return self

    def bucket(self, score: float) -> Bucket:
        if score >= self.high:
            return "high"
        if score >= self.medium:
            return "medium"
        return "low"


class LeadScore(BaseModel):
    """The score, its bucket, and everything needed to recompute or explain it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float = Field(ge=0, le=1)
    bucket: Bucket
    contributions: dict[str, float]
    weights: dict[str, float]
    thresholds: BucketThresholds


def parse_weights(raw: Mapping[str, object] | None) -> ScoreWeights:
    """Tenant-configured weights as `ScoreWeights`; None means the defaults.

    Raises ConfigError whose message names each offending field (unknown key, negative value,
    all zero), so a CLI or UI can show it as is.
    """
    if raw is None:
        return ScoreWeights()
    try:
        return ScoreWeights.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'weights'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid scoring weights: {problems}") from exc


def _apportion(raw: dict[str, float]) -> tuple[int, dict[str, int]]:
    """Round contributions to 1e-4 units so they add up exactly to the rounded total.

    Largest-remainder method: floor every term, then hand the units the rounding of the total
    needs to the terms with the largest remainders (ties in feature order). Each term moves by
    less than one unit and none goes negative.
    """
    units = {name: value * _UNIT for name, value in raw.items()}
    total = min(_UNIT, round(math.fsum(units.values())))
    floors = {name: math.floor(u) for name, u in units.items()}
    missing = total - sum(floors.values())
    order = sorted(units, key=lambda name: (-(units[name] - floors[name]), FEATURE_NAMES.index(name)))
    for name in order[: max(0, missing)]:
        floors[name] += 1
    return total, floors


def score_lead(
    features: LeadFeatures,
    *,
    weights: ScoreWeights | None = None,
    thresholds: BucketThresholds | None = None,
) -> LeadScore:
    """Weighted sum of the features (weights normalized), rounded to 4 places, and its bucket.

    `contributions[name]` = weight * value, rounded to 4 places so that they sum to `score`.
    Deterministic: same features and weights, same result.
    """
    weights = ScoreWeights() if weights is None else weights
    thresholds = BucketThresholds() if thresholds is None else thresholds
    normalized = weights.normalized()
    values = features.feature_values()
    raw = {name: normalized[name] * values[name] for name in FEATURE_NAMES}
    total, units = _apportion(raw)
    score = total / _UNIT
    return LeadScore(
        score=score,
        bucket=thresholds.bucket(score),
        contributions={name: units[name] / _UNIT for name in FEATURE_NAMES},
        weights={name: round(w, 6) for name, w in normalized.items()},
        thresholds=thresholds,
    )
