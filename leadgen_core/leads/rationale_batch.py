"""Rationales for several leads in one LLM request.

Each lead still goes through `Spender.call` on its own (its cache key, its budget reservation,
its settlement), so caching, the budget guard, dry runs and the template fallback work per lead
exactly as with one request per lead. Only the request itself is shared: a lead whose cache
missed hands its data to the `RationaleBatcher`, which sends up to `size` of them as one chat
completion (`batch_rationale_prompt`) once it has `size` of them, or no other lead has arrived
for `window_s` (leads trickle in as their cache look-ups and reservations finish, slower on a
busy machine), or `max_wait_s` has passed since the first. It takes one rate-limit slot per
request and gives each lead its own paragraph and an equal share of the request's tokens (the
shares add up to what the vendor charged). A failed request fails each of its leads the same way
a single request would; a lead the answer skipped gets None and falls back to the template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from leadgen_core.scoring.rationale import batch_rationale_prompt, batch_refs, parse_batch_rationales

DEFAULT_BATCH = 10
DEFAULT_WINDOW_S = 0.25  # quiet time after the last lead before a partial batch goes
DEFAULT_MAX_WAIT_S = 2.0  # a partial batch never waits longer than this for company


class TextWriter(Protocol):
    async def complete_text(self, *, system: str, user: str, max_tokens: int) -> tuple[str, int]: ...


def token_shares(total: int, n: int) -> list[int]:
    """TOTAL split over N leads as evenly as whole tokens allow (the shares sum to TOTAL)."""
    base, extra = divmod(max(0, total), n)
    return [base + (1 if i < extra else 0) for i in range(n)]


class RationaleBatcher:
    """Collects leads' rationale requests and sends them `size` at a time; see the module docstring."""

    def __init__(
        self,
        writer: TextWriter,
        *,
        pace: Callable[[], Awaitable[None]],
        max_tokens_per_lead: int,
        size: int = DEFAULT_BATCH,
        window_s: float = DEFAULT_WINDOW_S,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        if size < 1:
            raise ValueError("a batch holds at least one lead")
        self._writer, self._pace = writer, pace
        self._max_tokens, self._size, self._window_s = max_tokens_per_lead, size, window_s
        self._max_wait_s = max_wait_s
        self._first_at: float | None = None
        self._pending: list[tuple[Mapping[str, Any], asyncio.Future[tuple[str | None, int]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.requests = 0

    async def submit(self, payload: Mapping[str, Any]) -> tuple[str | None, int]:
        """This lead's paragraph (None when the answer skipped it) and its share of the tokens."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str | None, int]] = loop.create_future()
        self._pending.append((payload, future))
        if len(self._pending) >= self._size:
            self._flush()
        else:
            now = loop.time()
            if self._first_at is None:
                self._first_at = now
            if self._timer is not None:
                self._timer.cancel()  # another lead arrived: wait for a quiet moment again
            delay = min(self._window_s, max(0.0, self._first_at + self._max_wait_s - now))
            self._timer = loop.call_later(delay, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._first_at = None
        while self._pending:
            batch, self._pending = self._pending[: self._size], self._pending[self._size :]
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[Mapping[str, Any], asyncio.Future[tuple[str | None, int]]]]) -> None:
        try:
            await self._pace()
            system, user = batch_rationale_prompt([payload for payload, _ in batch])
            self.requests += 1
            text, tokens = await self._writer.complete_text(
                system=system, user=user, max_tokens=self._max_tokens * len(batch)
            )
            refs = batch_refs(len(batch))
            answers = parse_batch_rationales(text, refs)
            for (_, future), ref, share in zip(batch, refs, token_shares(tokens, len(batch)), strict=True):
                if not future.done():
                    future.set_result((answers.get(ref), share))
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # each lead fails as its own request would have
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
