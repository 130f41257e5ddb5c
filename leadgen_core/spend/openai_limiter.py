"""OpenAI's requests- and tokens-per-minute limits, shared by every process that uses one key.

OpenAI limits each key's organisation per model on requests a minute **and** tokens a minute,
and counts a request's tokens as its prompt plus its `max_completion_tokens` (rate limits guide;
`vendors.openai_tiers`). A request limiter alone lets a night of 10,000-token extractions run
into 429s on a tier-1 key long before its 500 RPM. So every call:

1. reserves one request and its token estimate (prompt upper bound + `max_completion_tokens`)
   in two `SharedTokenBucket`s in Postgres, waiting its turn when the minute is spent;
2. settles the token reservation with what OpenAI counted (`usage.prompt_tokens` + the
   completion limit), giving back the estimate's slack, and in the same transaction believes the
   x-ratelimit-remaining-* headers (another client of the same key may have spent what our
   buckets think is free);
3. on a 429 keeps the bucket shut until the named reset.

Both buckets hold a minute's allowance less ARRIVAL_ALLOWANCE_S of refill. OpenAI's buckets start
refilling when a burst's first request *arrives*, ours when it is *booked*: a burst's first
request reaches OpenAI later after its booking (a new connection, a busy event loop) than a
request sent after a wait does, and without the allowance that request arrives a few tokens
early (seen: refused by 1 token, 85 ms of refill, on a loaded machine). It costs one second of
allowance in a burst and nothing in the steady state, whose pace is the refill's.

Buckets are per key (a hash of it, never the key) and model, so a tenant's own key gets its own
limits and tenants on the platform's key share one, fairly: each call also books its tenant's
share of the tokens (`SharedTokenBucket` with a tenant), 1/K of the TPM with K tenants waiting.
Extraction and rationales share them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from leadgen_core.db.steps import db_step
from leadgen_core.retry_after import retry_after_seconds
from leadgen_core.spend.ratelimit import SharedTokenBucket, apply_adjustments
from leadgen_core.vendors.openai_tiers import parse_duration, tier_limits, try_again_seconds

BUCKET_PREFIX = "openai:"
MIN_BLOCK_S = 0.05
ARRIVAL_ALLOWANCE_S = 1.0  # see the module docstring


def held(per_minute: float) -> float:
    """A bucket's capacity: a minute's allowance less ARRIVAL_ALLOWANCE_S of refill."""
    return per_minute * (1.0 - ARRIVAL_ALLOWANCE_S / 60.0)


@dataclass(frozen=True)
class Reservation:
    """What one call booked in the tokens bucket."""

    tokens: int


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


class OpenAILimiter:
    """RPM and TPM buckets of one key and model; see the module docstring."""

    def __init__(
        self,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        api_key: str,
        model: str,
        rpm: float,
        tpm: float,
        tenant: str = "",
        one: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None,
    ) -> None:
        key_id = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
        base = f"{BUCKET_PREFIX}{key_id}:{model}"
        self.rpm, self.tpm = rpm, tpm
        self._one = one or conn  # the settlements' pipeline: one implicit transaction (apply_adjustments)
        self.requests = SharedTokenBucket(conn, bucket=f"{base}:requests", per_minute=rpm, capacity=held(rpm), one=one)
        # TENANT: tenants sharing the key get equal shares of its tokens per minute (SharedTokenBucket)
        self.tokens = SharedTokenBucket(conn, bucket=f"{base}:tokens", per_minute=tpm, capacity=held(tpm),
                                        tenant=tenant, one=one)  # fmt: skip

    @classmethod
    def for_tier(
        cls,
        conn: Callable[[], AbstractContextManager[psycopg.Connection]],
        *,
        api_key: str,
        model: str,
        tier: int,
        rpm: float | None = None,
        tpm: float | None = None,
        tenant: str = "",
        one: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None,
    ) -> OpenAILimiter:
        """The documented limits of TIER, unless RPM or TPM are set explicitly."""
        limits = tier_limits(tier)
        return cls(conn, api_key=api_key, model=model, rpm=rpm or limits.rpm, tpm=tpm or limits.tpm, tenant=tenant,
                   one=one)  # fmt: skip

    async def reserve(self, tokens: int) -> Reservation:
        """One request and TOKENS (capped at the bucket's capacity), waiting until both are free."""
        await self.requests.take(1)
        booked = int(min(tokens, self.tokens.capacity))
        try:
            await self.tokens.take(booked)
        except BaseException:
            await self.requests.adjust(1)
            raise
        return Reservation(tokens=booked)

    async def settle(self, reservation: Reservation, *, counted: int, headers: Mapping[str, str] | None = None) -> None:
        """OpenAI counted COUNTED tokens for the call: give back (or take) the difference. With the
        answer's HEADERS, first believe what they say remains (`observe`): one transaction for both."""
        changes = self._observed(headers) if headers is not None else []
        if counted != reservation.tokens:
            changes += self.tokens.adjustments(reservation.tokens - counted)
        if changes:
            await db_step(apply_adjustments, self._one, changes)

    async def release(self, reservation: Reservation) -> None:
        """The call was refused before it counted (a 429): return what it booked."""
        await self.requests.adjust(1)
        await self.tokens.adjust(reservation.tokens)

    async def observe(self, headers: Mapping[str, str]) -> None:
        """Never believe more is left than the x-ratelimit-remaining-* headers say (one transaction)."""
        changes = self._observed(headers)
        if changes:
            await db_step(apply_adjustments, self._one, changes)

    def _observed(self, headers: Mapping[str, str]) -> list[dict[str, object]]:
        tokens = _header_int(headers, "x-ratelimit-remaining-tokens")
        requests = _header_int(headers, "x-ratelimit-remaining-requests")
        changes = [] if tokens is None else [self.tokens.adjust_params(ceiling=tokens)]
        return changes + ([] if requests is None else [self.requests.adjust_params(ceiling=requests)])

    async def refused(self, *, kind: str | None, message: str | None, headers: Mapping[str, str]) -> float:
        """A 429: keep the bucket it names shut until its reset; the seconds it was shut for.

        The reset is the longest of the message's "try again in", the Retry-After header, or else
        the x-ratelimit-reset-* header. A shut bucket more than MAX_WAIT_S away makes the next
        reservation give up (TimeoutError: the item fails `rate_limited:queue`, retried later)."""
        bucket = self.requests if kind == "requests" else self.tokens
        header = "x-ratelimit-reset-requests" if kind == "requests" else "x-ratelimit-reset-tokens"
        named = try_again_seconds(message)
        sent = retry_after_seconds(headers.get("retry-after"))  # honoured as sent, when OpenAI sends one
        told = [w for w in (named, sent) if w is not None]
        wait = max(told) if told else parse_duration(headers.get(header))
        wait = max(MIN_BLOCK_S, wait if wait is not None else 1.0)
        await bucket.block(wait)
        return wait
