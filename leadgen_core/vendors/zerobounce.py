"""ZeroBounce v2 client: single and batch email validation, and the credit balance.

The key travels as the `api_key` query parameter on GETs and as a body field on the batch POST,
as documented; the shared HTTP helper keeps it out of exception messages and httpx's logs. A bad
key is reported by ZeroBounce as a 200 with an `error` field (or `Credits: "-1"`), which this
client turns into VendorAuthError. `unknown` results are not charged by ZeroBounce, so
`Verification.charged` is False for them.

`validatebatch` goes to the bulk host (bulkapi.zerobounce.net, `bulk_base_url`), with a timeout
that fits its documented 70 s; `validate` waits for its documented 30 s. Both are billable, so
neither is ever re-sent after it may have reached ZeroBounce unanswered: a timeout raises
`ChargeUncertain` (see `request_json`) and the caller records it and decides what to retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from leadgen_core.errors import VendorAuthError, VendorResponseError
from leadgen_core.retry_policy import RetryPolicy
from leadgen_core.vendors.base import VendorClient
from leadgen_core.vendors.http import expect_list
from leadgen_core.vendors.limits import ZEROBOUNCE_BATCH_MAX, ZEROBOUNCE_BATCH_MAX_S, ZEROBOUNCE_VALIDATE_TAIL_S

VENDOR = "zerobounce"
BATCH_MAX = ZEROBOUNCE_BATCH_MAX  # the documented limit of one validatebatch request (older pages said 100)
# The documented longest answers plus a margin for the network: a shorter timeout would give up
# on (and, if re-sent, pay twice for) a request ZeroBounce is still working on.
VALIDATE_TIMEOUT_S = ZEROBOUNCE_VALIDATE_TAIL_S + 10.0
BATCH_TIMEOUT_S = ZEROBOUNCE_BATCH_MAX_S + 15.0
MAX_EMAILS_PER_CALL = 2_000
MAX_EMAIL_CHARS = 254
STATUSES = frozenset({"valid", "invalid", "catch-all", "unknown", "spamtrap", "abuse", "do_not_mail"})
UNCHARGED_STATUSES = frozenset({"unknown"})


@dataclass(frozen=True)
class Verification:
    email: str
    status: str
    sub_status: str
    free_email: bool
    did_you_mean: str | None
    charged: bool


def _verification(email: str, item: dict[str, Any]) -> Verification:
    status = item.get("status")
    if status not in STATUSES:
        raise VendorResponseError(VENDOR, f"undocumented validation status {str(status)[:40]!r}")
    free = item.get("free_email")
    suggestion = item.get("did_you_mean")
    return Verification(
        email=email,
        status=status,
        sub_status=str(item.get("sub_status") or "")[:64],
        free_email=free is True or (isinstance(free, str) and free.lower() == "true"),
        did_you_mean=suggestion[:MAX_EMAIL_CHARS] if isinstance(suggestion, str) and suggestion else None,
        charged=status not in UNCHARGED_STATUSES,
    )


def _raise_key_error(message: Any) -> None:
    # ZeroBounce cannot tell "bad key" from "no credits left"; neither is worth retrying
    if isinstance(message, str) and message:
        raise VendorAuthError(VENDOR, "the API key was rejected or the account ran out of credits")


class ZeroBounceClient(VendorClient):
    """Async ZeroBounce v2 client; the key travels as the `api_key` parameter, as documented."""

    VENDOR = VENDOR

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        bulk_base_url: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = VALIDATE_TIMEOUT_S,
        batch_timeout_s: float = BATCH_TIMEOUT_S,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(base_url=base_url, api_key=api_key, http=http, timeout_s=timeout_s, retry=retry)
        # the bulk host serves validatebatch; without one (an old sandbox) the main host is asked
        self._bulk = (bulk_base_url or base_url).rstrip("/")
        self._batch_timeout_s = batch_timeout_s

    async def validate(self, email: str) -> Verification:
        """Validate one address (`ip_address` is sent blank: the parameter is required, the value not)."""
        email = email.strip()[:MAX_EMAIL_CHARS]
        body = await self._request(
            "GET", "/v2/validate", params={"api_key": self._key, "email": email, "ip_address": ""}, billable=True
        )
        _raise_key_error(body.get("error"))
        return _verification(email, body)

    async def validate_batch(self, emails: Sequence[str], *, batch_size: int = BATCH_MAX) -> list[Verification]:
        """Validate up to MAX_EMAILS_PER_CALL distinct addresses, batch_size per request (<= BATCH_MAX), in order."""
        if not 1 <= batch_size <= BATCH_MAX:
            raise ValueError(f"batch_size must be between 1 and {BATCH_MAX}")
        wanted = list(dict.fromkeys(e.strip()[:MAX_EMAIL_CHARS] for e in emails if e.strip()))
        if len(wanted) > MAX_EMAILS_PER_CALL:
            raise ValueError(f"at most {MAX_EMAILS_PER_CALL} emails per call")
        found: dict[str, Verification] = {}
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start : start + batch_size]
            body = await self._request(
                "POST",
                "/v2/validatebatch",
                json={"api_key": self._key, "email_batch": [{"email_address": e, "ip_address": None} for e in chunk]},
                base_url=self._bulk,
                timeout_s=self._batch_timeout_s,
                billable=True,
            )
            for error in expect_list(VENDOR, body.get("errors"), what="validatebatch errors")[: len(chunk) + 1]:
                if isinstance(error, dict) and error.get("email_address") == "all":
                    _raise_key_error(error.get("error"))
            by_address = {e.lower(): e for e in chunk}
            for item in expect_list(VENDOR, body.get("email_batch"), what="validatebatch email_batch")[: len(chunk)]:
                address = item.get("address") if isinstance(item, dict) else None
                if isinstance(address, str) and address.lower() in by_address:
                    original = by_address[address.lower()]
                    found[original] = _verification(original, item)
        return [found[e] for e in wanted if e in found]

    async def credits(self) -> int:
        """The account's remaining validation credits."""
        body = await self._request("GET", "/v2/getcredits", params={"api_key": self._key})
        try:
            credits = int(str(body.get("Credits")))
        except ValueError:
            raise VendorResponseError(VENDOR, "getcredits: Credits is not a number") from None
        if credits < 0:
            raise VendorAuthError(VENDOR, "getcredits: the API key was rejected")
        return credits
