"""An `OdooClient` that keeps at most N requests in flight and counts the calls it makes.

A tenant's Odoo serves its own salespeople from a small pool of worker processes; a sync that
filled every worker would stall their screens and gain nothing, as further requests only queue in
Odoo. One `LimitedClient` per tenant database bounds the stage's requests however many chunks run
at once (asyncio's semaphore hands free slots to waiters in arrival order).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from leadgen_core.odoo.client import Domain, OdooClient


class LimitedClient:
    """Wraps CLIENT: every call waits for one of MAX_IN_FLIGHT slots; `calls` counts them by method."""

    def __init__(self, client: OdooClient, *, max_in_flight: int) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.inner = client
        self._slots = asyncio.Semaphore(max_in_flight)
        self.calls: Counter[str] = Counter()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    async def search_read(
        self, model: str, domain: Domain, *, fields: Sequence[str], limit: int | None = None
    ) -> list[dict[str, Any]]:
        async with self._slots:
            self.calls["search_read"] += 1
            return await self.inner.search_read(model, domain, fields=fields, limit=limit)

    async def create(self, model: str, vals: Mapping[str, Any]) -> int:
        async with self._slots:
            self.calls["create"] += 1
            return await self.inner.create(model, vals)

    async def create_many(self, model: str, vals_list: Sequence[Mapping[str, Any]]) -> list[int]:
        async with self._slots:
            self.calls["create"] += 1
            return await self.inner.create_many(model, vals_list)

    async def write(self, model: str, ids: Sequence[int], *, vals: Mapping[str, Any]) -> bool:
        async with self._slots:
            self.calls["write"] += 1
            return await self.inner.write(model, ids, vals=vals)

    async def field_names(self, model: str) -> set[str]:
        async with self._slots:
            self.calls["fields_get"] += 1
            return await self.inner.field_names(model)

    async def close(self) -> None:
        await self.inner.close()
