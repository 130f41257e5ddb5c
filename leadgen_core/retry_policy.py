"""The one HTTP retry policy, shared by the vendor clients (vendors.http) and the Odoo transport.

Attempts count the first call. Between attempts: the server's `Retry-After` when it sent one
(bounded by `max_retry_after_s`), otherwise full-jitter exponential backoff, so concurrent
workers do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_RETRY_AFTER_S = 30.0

_jitter = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in total (first call included) and the backoff curve."""

    max_attempts: int = 4
    base_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_retry_after_s: float = MAX_RETRY_AFTER_S

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given 1-based attempt that just failed."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * (2 ** (attempt - 1)))
        return _jitter.uniform(ceiling / 2, ceiling)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's RETRY_AFTER bounded to [0, max_retry_after_s], else `backoff(attempt)`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_s)
        return self.backoff(attempt)
