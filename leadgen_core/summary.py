"""The morning summary: one Slack-compatible message per finished tenant night.

Built from what the night recorded (stage metadata, the spend ledger, the stage timings) by the
Dagster sensor that watches successful nights; this module only shapes and sends the message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

from leadgen_core.alerts import post_payload
from leadgen_core.spend.budget import VendorSpend

BUCKETS = ("high", "medium", "low")


@dataclass(frozen=True)
class NightSummary:
    tenant: str
    day: date
    targets: int
    buckets: dict[str, int]
    synced: dict[str, int]  # Odoo model → records in step after the night
    units: dict[str, int]  # vendor → units this night's stages spent
    spend: list[VendorSpend] = field(default_factory=list)  # today's ledger against the daily caps
    duration_s: float | None = None
    sla_minutes: int = 90
    link: str | None = None

    def lines(self) -> list[str]:
        buckets = ", ".join(f"{b} {self.buckets.get(b, 0)}" for b in BUCKETS)
        synced = ", ".join(f"{m} {n}" for m, n in sorted(self.synced.items())) or "nothing"
        spend = [
            f"{v.vendor}: {self.units.get(v.vendor, 0)} this night; {v.units} of {v.cap} today"
            + ("" if v.within_cap else " (over cap)")
            for v in self.spend
        ]
        if self.duration_s is None:
            duration = f"not timed (SLA {self.sla_minutes} min)"
        else:
            minutes = self.duration_s / 60
            verdict = "within" if minutes <= self.sla_minutes else "OVER"
            duration = f"{minutes:.1f} min, {verdict} the {self.sla_minutes} min SLA"
        return [
            f"*Targets:* {self.targets}",
            f"*Leads by bucket:* {buckets}",
            f"*Synced to Odoo:* {synced}",
            "*Spend against caps:* " + ("; ".join(spend) or "no vendor spend"),
            f"*Duration:* {duration}",
        ]

    def payload(self) -> dict[str, Any]:
        title = f"leadgen night done: {self.tenant} {self.day.isoformat()}"
        body = "\n".join(self.lines())
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        ]
        if self.link:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.link}|Open the run in Dagster>"}}
            )
        return {
            "text": f"{title}: {self.targets} targets, " + ", ".join(f"{self.buckets.get(b, 0)} {b}" for b in BUCKETS),
            "blocks": blocks,
        }


def post_summary(url: str, summary: NightSummary, *, client: httpx.Client | None = None) -> str | None:
    """Post SUMMARY; None on success, else a short reason (never the URL)."""
    return post_payload(url, summary.payload(), client=client)
