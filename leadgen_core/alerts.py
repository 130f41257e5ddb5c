"""Slack-compatible webhook alerts (run failures, repeated failures, SLA deadlines).

The payload is Slack's incoming-webhook JSON (`text` plus `blocks`), which Slack, Mattermost and
most chat tools accept. Posting is bounded: a short timeout and two retries, then the failure is
returned to the caller to log; an alert must never take a sensor down with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT_S = 5.0
ATTEMPTS = 3


@dataclass(frozen=True)
class Alert:
    title: str
    tenant: str | None
    partition: str | None
    step: str | None
    error: str
    link: str | None

    def payload(self) -> dict[str, Any]:
        fields = [
            f"*Tenant:* {self.tenant or '-'}",
            f"*Partition:* {self.partition or '-'}",
            f"*Step:* {self.step or '-'}",
        ]
        text = f"{self.title}: {self.error[:300]}"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{self.error[:1500]}```"}},
        ]
        if self.link:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.link}|Open in Dagster>"}})
        return {"text": text, "blocks": blocks}


def post_alert(url: str, alert: Alert, *, client: httpx.Client | None = None) -> str | None:
    """Post ALERT; returns None on success or a short reason (never the URL, which is a secret)."""
    return post_payload(url, alert.payload(), client=client)


def post_payload(url: str, payload: dict[str, Any], *, client: httpx.Client | None = None) -> str | None:
    """Post a Slack-compatible PAYLOAD with bounded retries; None on success, else a short reason."""
    owned = client is None
    http = client or httpx.Client(timeout=TIMEOUT_S)
    reason: str | None = "not sent"
    try:
        for attempt in range(ATTEMPTS):
            try:
                resp = http.post(url, json=payload, timeout=TIMEOUT_S)
                if resp.status_code < 300:
                    return None
                reason = f"webhook answered HTTP {resp.status_code}"
                if resp.status_code < 500 and resp.status_code != 429:
                    return reason
            except httpx.HTTPError as exc:
                reason = f"webhook unreachable ({type(exc).__name__})"
            time.sleep(0.5 * (attempt + 1))
        return reason
    finally:
        if owned:
            http.close()
