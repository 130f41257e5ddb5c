"""The tenant's ICP rules as a validated model.

It accepts the predecessor's payload as it stood
(`{"industries": [...], "employee_range": {"min", "max"}, "incorporation_year": {"min", "max"}}`)
and extends it with `ssic_codes` (codes or prefixes) and score `weights`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leadgen_core.errors import ConfigError
from leadgen_core.scoring.score import ScoreWeights

SSIC_PREFIX_RE = re.compile(r"^\d{1,5}$")
WEIGHT_KEYS = frozenset(
    {"icp_fit", "size_fit", "age", "data_completeness", "email_tier", "contact_seniority", "web_presence"}
)
MAX_TERMS = 50
# The ranges are compared with integer columns (companies.employees_est, incorporation_year):
# a bound past int4 failed the night's candidate query instead of the `icp set` that wrote it.
INT4_MAX = 2_147_483_647
MIN_YEAR = 1800  # the registry's own bounds (acra.validate: dates outside are quarantined)
MAX_YEAR = 2200


class Range(BaseModel):
    """An inclusive range of employees: 0 to INT4_MAX."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | None = Field(default=None, ge=0, le=INT4_MAX)
    max: int | None = Field(default=None, ge=0, le=INT4_MAX)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class YearRange(Range):
    """An inclusive range of incorporation years: MIN_YEAR to MAX_YEAR."""

    min: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    max: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)


class IcpRules(BaseModel):
    """What a tenant's ideal customer looks like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    industries: list[str] = Field(default_factory=list, max_length=MAX_TERMS)
    ssic_codes: list[str] = Field(default_factory=list, max_length=MAX_TERMS)
    employee_range: Range | None = None
    incorporation_year: YearRange | None = None
    weights: dict[str, float] | None = None

    @field_validator("industries")
    @classmethod
    def _terms(cls, value: list[str]) -> list[str]:
        cleaned = [v.strip() for v in value if v.strip()]
        for v in cleaned:
            if len(v) > 100:
                raise ValueError(f"industry term too long: {v[:30]!r}...")
        return cleaned

    @field_validator("ssic_codes")
    @classmethod
    def _codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not SSIC_PREFIX_RE.match(code.strip()):
                raise ValueError(f"{code!r} is not an SSIC code or prefix (1 to 5 digits)")
        return [c.strip() for c in value]

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        unknown = sorted(set(value) - WEIGHT_KEYS)
        if unknown:
            raise ValueError(f"unknown weight(s) {unknown}; allowed: {sorted(WEIGHT_KEYS)}")
        # One rule for weights: the scorer's own model (finite, 0 to MAX_WEIGHT, one positive).
        try:
            ScoreWeights.model_validate(value)
        except ValidationError as exc:
            raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'weights'}: {e['msg']}"
                                       for e in exc.errors())) from None  # fmt: skip
        if not any(v > 0 for v in value.values()):
            raise ValueError("weights must be non-negative and at least one positive")
        return value

    @model_validator(mode="after")
    def _something_to_match(self) -> IcpRules:
        if not self.industries and not self.ssic_codes:
            raise ValueError("give at least one of 'industries' or 'ssic_codes'")
        return self

    def code_prefixes(self) -> list[str]:
        """SSIC codes or prefixes given explicitly, including digit-only entries of `industries`."""
        from_terms = [t for t in self.industries if SSIC_PREFIX_RE.match(t)]
        return sorted(set(self.ssic_codes) | set(from_terms))

    def free_terms(self) -> list[str]:
        return [t for t in self.industries if not SSIC_PREFIX_RE.match(t)]


MAX_RULES_CHARS = 1_000_000  # a rules file is a few hundred bytes


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json_document(text: str, *, what: str) -> Any:
    """TEXT as strict JSON (no NaN/Infinity), or ConfigError naming WHAT: never a RecursionError
    from deep nesting, nor a ValueError from a 5,000-digit number."""
    if len(text) > MAX_RULES_CHARS:
        raise ConfigError(f"{what} is not valid JSON: larger than {MAX_RULES_CHARS} characters")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ConfigError(f"{what} is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer past Python's digit limit
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def parse_rules(payload: Any) -> IcpRules:
    """Validate a payload; errors name the field (`employee_range.min: ...`)."""
    try:
        return IcpRules.model_validate(payload)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "rules"
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError("invalid ICP rules: " + "; ".join(problems)) from None
