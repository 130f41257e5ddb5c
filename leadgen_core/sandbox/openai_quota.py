"""The OpenAI simulator's rate limits: RPM and TPM buckets per API key and model.

OpenAI's limits replenish continuously rather than resetting on the minute (rate limits guide,
"How do these rate limits work?"): a bucket holds up to a minute's allowance and refills at
limit/60 per second. A request is admitted when the requests bucket holds one request and the
tokens bucket holds its prompt plus its `max_completion_tokens`; both are taken at once. A
request whose tokens exceed the whole minute's allowance can never pass ("Request too large").

Every answer carries the documented x-ratelimit-* headers (`headers`), and a refusal carries the
documented 429 body: type "requests" or "tokens", code "rate_limit_exceeded", and a message that
names the limit, the use, the request and the wait.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from leadgen_core.vendors.openai_tiers import TierLimits, format_duration

RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"
SANDBOX_ORG = "org-sandbox"


@dataclass
class _Bucket:
    capacity: float
    per_s: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_s)
        self.at = now

    def reset_s(self) -> float:
        """Seconds until the bucket is full again (x-ratelimit-reset-*)."""
        return max(0.0, (self.capacity - self.level) / self.per_s)

    def wait_for(self, amount: float) -> float:
        return max(0.0, (amount - self.level) / self.per_s)


@dataclass(frozen=True)
class Verdict:
    """The admission decision and the headers to send with the answer."""

    headers: dict[str, str]
    refusal: dict[str, Any] | None = None


class ModelQuota:
    """Both buckets of every (key, model), per minute, with the time scale already applied."""

    def __init__(self, limits: TierLimits, *, scale: float) -> None:
        self.rpm = limits.rpm * scale
        self.tpm = limits.tpm * scale
        self._buckets: dict[tuple[str, str], tuple[_Bucket, _Bucket]] = {}
        self._lock = threading.Lock()

    def _pair(self, key: str, model: str, now: float) -> tuple[_Bucket, _Bucket]:
        pair = self._buckets.get((key, model))
        if pair is None:
            pair = (
                _Bucket(self.rpm, self.rpm / 60.0, self.rpm, now),
                _Bucket(self.tpm, self.tpm / 60.0, self.tpm, now),
            )
            self._buckets[(key, model)] = pair
        return pair

    def admit(self, *, key: str, model: str, tokens: int) -> Verdict:
        """Take one request and TOKENS, or refuse with the documented 429 body."""
        now = time.monotonic()
        with self._lock:
            requests, budget = self._pair(key, model, now)
            requests.refill(now)
            budget.refill(now)
            refusal: dict[str, Any] | None = None
            if tokens > self.tpm:
                refusal = _body(
                    "tokens",
                    f"Request too large for {model} in organization {SANDBOX_ORG} on tokens per min (TPM): "
                    f"Limit {self.tpm:.0f}, Requested {tokens}. The input or output tokens must be reduced "
                    f"in order to run successfully. Visit {RATE_LIMITS_URL} to learn more.",
                )
            elif requests.level < 1:
                refusal = _body("requests", _reached(model, "requests per min (RPM)", self.rpm, requests, 1))
            elif budget.level < tokens:
                refusal = _body("tokens", _reached(model, "tokens per min (TPM)", self.tpm, budget, tokens))
            else:
                requests.level -= 1
                budget.level -= tokens
            headers = {
                "x-ratelimit-limit-requests": f"{self.rpm:.0f}",
                "x-ratelimit-limit-tokens": f"{self.tpm:.0f}",
                "x-ratelimit-remaining-requests": f"{max(0, int(requests.level))}",
                "x-ratelimit-remaining-tokens": f"{max(0, int(budget.level))}",
                "x-ratelimit-reset-requests": format_duration(requests.reset_s()),
                "x-ratelimit-reset-tokens": format_duration(budget.reset_s()),
            }
        return Verdict(headers=headers, refusal=refusal)


def _reached(model: str, what: str, limit: float, bucket: _Bucket, requested: int) -> str:
    used = max(0, int(bucket.capacity - bucket.level))
    wait = format_duration(bucket.wait_for(requested))
    return (
        f"Rate limit reached for {model} in organization {SANDBOX_ORG} on {what}: Limit {limit:.0f}, "
        f"Used {used}, Requested {requested}. Please try again in {wait}. Visit {RATE_LIMITS_URL} to learn more."
    )


def _body(kind: str, message: str) -> dict[str, Any]:
    # the documented 429 envelope (rate limits guide, "Error mitigation"; error codes page)
    return {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}
