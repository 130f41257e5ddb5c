"""A ZeroBounce v2 simulator: single validation, real-time batch validation and credit balance.

Shapes follow ZeroBounce's v2 docs. The key is a query parameter on GETs and a body field on the
batch POST. A bad key (or an empty balance) is not an HTTP error there: `/v2/validate` answers
200 `{"error": "Invalid API key or your account ran out of credits"}`, the batch answers 200 with
`errors: [{"error": ..., "email_address": "all"}]` and `/v2/getcredits` answers `{"Credits": "-1"}`.
A request without its required parameter is a 400. A batch holds at most 200 addresses (the
current docs; older pages said 100).

Statuses and sub-statuses come from the documented vocabulary. The documented sandbox addresses
(`valid@example.com`, `unknown@example.com`, `role_based@example.com`, ...) answer as documented
(and, unlike the real service, are billed like any address, so billing tests can use them);
other addresses are classified by syntax, free/disposable/typo domains, role accounts and
`stable_fraction`. `unknown` is never charged; every other result costs one credit from the
balance the simulator keeps.

`validatebatch` is served by a second server, the bulk host (`bulk.base_url`, exported as
ZEROBOUNCE_BULK_BASE_URL), as ZeroBounce serves it from bulkapi.zerobounce.net. The `demo`
profile also answers it on the main host, so old configurations keep working; `realistic` does
not (404, as the real single-validation host would). In `realistic` (numbers and sources in
`leadgen_core.vendors.limits`, scaled by the profile's time scale):

* `validate` answers in 1-5 s, with a few slow mail servers taking up to 30 s;
* `validatebatch` takes up to 70 s for a full batch of 200, allows 5 calls a minute and blocks
  the bulk host for 10 minutes when exceeded;
* a second batch answer within an hour holding over 20 unknown results (other than greylisted
  and antispam) blocks the bulk host for an hour.

A blocked request gets 429 with the documented error body and, though ZeroBounce documents no
such header, a `Retry-After` of the remaining block, so clients that honour it can be tested.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from leadgen_core.sandbox.base import FaultConfig, LoggedRequest, SimRequest, SimResponse, SimServer
from leadgen_core.sandbox.naming import stable_fraction
from leadgen_core.sandbox.profile import DEMO, SandboxProfile
from leadgen_core.sandbox.quota import Quota, Refusal, Window
from leadgen_core.vendors.limits import (
    ZEROBOUNCE_BATCH_BLOCK_S,
    ZEROBOUNCE_BATCH_MAX,
    ZEROBOUNCE_BATCH_MAX_S,
    ZEROBOUNCE_BATCH_PER_MINUTE,
    ZEROBOUNCE_UNKNOWN_BLOCK_S,
    ZEROBOUNCE_UNKNOWN_LIMIT,
    ZEROBOUNCE_VALIDATE_BLOCK_S,
    ZEROBOUNCE_VALIDATE_PER_10S,
    ZEROBOUNCE_VALIDATE_TAIL_RATE,
    ZEROBOUNCE_VALIDATE_TAIL_S,
    ZEROBOUNCE_VALIDATE_TYPICAL_S,
)

BATCH_MAX = ZEROBOUNCE_BATCH_MAX
BATCH_PATH = "/v2/validatebatch"
# unknowns that do not count toward the bulk host's unknown rule (zerobounce.net/docs/api-dashboard/api-rate-limits)
UNKNOWN_RULE_EXEMPT = frozenset({"greylisted", "antispam_system"})
KEY_ERROR = "Invalid API key or your account ran out of credits"
BATCH_KEY_ERROR = "Invalid API Key or your account ran out of credits"
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
FREE_DOMAINS = frozenset({"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "aol.com"})
DISPOSABLE_DOMAINS = frozenset({"mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com"})
TYPO_DOMAINS = {
    "gmial.com": "gmail.com",
    "gmai.com": "gmail.com",
    "yaho.com": "yahoo.com",
    "hotmial.com": "hotmail.com",
}
ROLE_LOCALS = frozenset({"info", "sales", "admin", "contact", "support", "hello", "enquiries", "office", "hr", "team"})
CATCH_ALL_DOMAIN_RATE = 0.15
# cumulative per-address thresholds, checked in order after the rules above
ADDRESS_OUTCOMES = (
    (0.08, "unknown", "greylisted"),
    (0.12, "unknown", "mail_server_did_not_respond"),
    (0.20, "invalid", "mailbox_not_found"),
    (0.21, "spamtrap", ""),
    (0.22, "abuse", ""),
)
SANDBOX_STATUSES = {
    "valid": ("valid", ""),
    "invalid": ("invalid", "mailbox_not_found"),
    "catch_all": ("catch-all", ""),
    "unknown": ("unknown", "mail_server_temporary_error"),
    "spamtrap": ("spamtrap", ""),
    "abuse": ("abuse", ""),
    "donotmail": ("do_not_mail", "role_based"),
    "disposable": ("do_not_mail", "disposable"),
    "toxic": ("do_not_mail", "toxic"),
    "role_based": ("do_not_mail", "role_based"),
    "role_based_catch_all": ("do_not_mail", "role_based_catch_all"),
    "global_suppression": ("do_not_mail", "global_suppression"),
    "possible_trap": ("do_not_mail", "possible_trap"),
    "antispam_system": ("unknown", "antispam_system"),
    "greylisted": ("unknown", "greylisted"),
    "mail_server_temporary_error": ("unknown", "mail_server_temporary_error"),
    "forcible_disconnect": ("unknown", "forcible_disconnect"),
    "mail_server_did_not_respond": ("unknown", "mail_server_did_not_respond"),
    "timeout_exceeded": ("unknown", "timeout_exceeded"),
    "failed_smtp_connection": ("unknown", "failed_smtp_connection"),
    "exception_occurred": ("unknown", "exception_occurred"),
    "mailbox_quota_exceeded": ("invalid", "mailbox_quota_exceeded"),
    "mailbox_not_found": ("invalid", "mailbox_not_found"),
    "no_dns_entries": ("invalid", "no_dns_entries"),
    "failed_syntax_check": ("invalid", "failed_syntax_check"),
    "possible_typo": ("invalid", "possible_typo"),
    "unroutable_ip_address": ("invalid", "unroutable_ip_address"),
    "does_not_accept_mail": ("invalid", "does_not_accept_mail"),
    "alias_address": ("valid", "alias_address"),
    "leading_period_removed": ("valid", "leading_period_removed"),
}


def classify(email: str) -> tuple[str, str, str | None]:
    """(status, sub_status, did_you_mean) for an address, deterministically."""
    email = email.strip()
    if not EMAIL_RE.match(email):
        return "invalid", "failed_syntax_check", None
    local, _, domain = email.lower().rpartition("@")
    if domain == "example.com" and local in SANDBOX_STATUSES:
        return (*SANDBOX_STATUSES[local], None)
    if domain in TYPO_DOMAINS:
        return "invalid", "possible_typo", f"{local}@{TYPO_DOMAINS[domain]}"
    if domain in DISPOSABLE_DOMAINS:
        return "do_not_mail", "disposable", None
    if local in ROLE_LOCALS:
        return "do_not_mail", "role_based", None
    if domain not in FREE_DOMAINS and stable_fraction("zb-catch-all", domain) < CATCH_ALL_DOMAIN_RATE:
        return "catch-all", "", None
    roll = stable_fraction("zb-address", email.lower())
    for threshold, status, sub_status in ADDRESS_OUTCOMES:
        if roll < threshold:
            return status, sub_status, None
    return "valid", "", None


def result_for(email: str) -> dict[str, Any]:
    """The documented result object of one validation."""
    status, sub_status, did_you_mean = classify(email)
    local, _, domain = email.strip().rpartition("@")
    known_domain = status != "invalid" or sub_status not in {"failed_syntax_check", "no_dns_entries"}
    return {
        "address": email,
        "status": status,
        "sub_status": sub_status,
        "free_email": domain.lower() in FREE_DOMAINS,
        "did_you_mean": did_you_mean,
        "account": local or None,
        "domain": domain or None,
        "domain_age_days": str(400 + int(stable_fraction("age", domain) * 9000)) if known_domain else None,
        "smtp_provider": None,
        "mx_found": "true" if known_domain else "false",
        "mx_record": f"mx1.{domain.lower()}" if known_domain else None,
        "firstname": None,
        "lastname": None,
        "gender": None,
        "country": None,
        "region": None,
        "city": None,
        "zipcode": None,
        "processed_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
    }


def _blocked(refused: Refusal, body: dict[str, Any]) -> SimResponse:
    wait = max(1, int(refused.retry_after_s + 0.999))
    return SimResponse(429, body, headers={"Retry-After": str(wait)})


class ZeroBounceBulkSim(SimServer):
    """The bulk host: only `validatebatch`, answered by its ZeroBounceSim (same balance and key)."""

    name = "zerobounce-bulk"

    def __init__(self, main: ZeroBounceSim, *, port: int = 0) -> None:
        super().__init__(faults=main.faults, port=port, profile=main.profile)
        self.main = main
        self.route("POST", BATCH_PATH, self._batch)

    def _answer(self, req: SimRequest) -> SimResponse:
        self.faults = self.main.faults  # faults set on the vendor apply to both of its hosts
        return super()._answer(req)

    def _batch(self, req: SimRequest) -> SimResponse:
        resp = self.main.validate_batch(req)
        with self.main._lock:
            self.main.billable_units += resp.billable_units
        return resp

    def rate_limit_body(self) -> dict[str, Any]:
        return self.main.rate_limit_body()


class ZeroBounceSim(SimServer):
    """ZeroBounce v2 over loopback, with a credit balance it decrements, and its bulk host."""

    name = "zerobounce"

    def __init__(
        self,
        *,
        api_key: str = "sandbox-zerobounce-key",
        faults: FaultConfig | None = None,
        port: int = 0,
        profile: SandboxProfile = DEMO,
        credits: int = 100_000,
    ) -> None:
        super().__init__(faults=faults, port=port, profile=profile)
        self.api_key = api_key
        self.credits = credits
        self.bulk = ZeroBounceBulkSim(self)
        self._latency_rng = random.Random(self.faults.seed)
        self._rule_lock = threading.Lock()
        self._unknown_heavy: deque[float] = deque()
        self.in_flight = 0  # single validations being answered now, and the most at once
        self.peak_in_flight = 0
        per_10s = int(profile.rate(ZEROBOUNCE_VALIDATE_PER_10S))
        per_minute = max(1, int(profile.rate(ZEROBOUNCE_BATCH_PER_MINUTE)))
        self.validate_quota = Quota([Window("validate", per_10s, 10.0, profile.period(ZEROBOUNCE_VALIDATE_BLOCK_S))])
        self.batch_quota = Quota([Window("batch", per_minute, 60.0, profile.period(ZEROBOUNCE_BATCH_BLOCK_S))])
        self.route("GET", "/v2/validate", self._validate)
        if not profile.realistic:
            self.route("POST", BATCH_PATH, self.validate_batch)
        self.route("GET", "/v2/getcredits", self._get_credits)

    # --- the two hosts --------------------------------------------------------------------
    def start(self) -> ZeroBounceSim:
        super().start()
        try:
            self.bulk.start()
        except BaseException:
            super().stop()
            raise
        return self

    def stop(self) -> None:
        self.bulk.stop()
        super().stop()

    @property
    def bulk_base_url(self) -> str:
        return self.bulk.base_url

    def reset_log(self) -> None:
        super().reset_log()
        self.bulk.reset_log()

    def requests_to(self, path: str) -> list[LoggedRequest]:
        """Requests to PATH on either host (the batch lives on the bulk host)."""
        return super().requests_to(path) + self.bulk.requests_to(path)

    # --- realistic timing -----------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if self.profile.realistic and seconds > 0:
            time.sleep(self.profile.latency(seconds))

    def _validate_seconds(self) -> float:
        with self._lock:
            if self._latency_rng.random() < ZEROBOUNCE_VALIDATE_TAIL_RATE:
                return self._latency_rng.uniform(ZEROBOUNCE_VALIDATE_TYPICAL_S[1], ZEROBOUNCE_VALIDATE_TAIL_S)
            return self._latency_rng.uniform(*ZEROBOUNCE_VALIDATE_TYPICAL_S)

    def _batch_seconds(self, size: int) -> float:
        # Not documented beyond "up to 70 seconds": taken as proportional to the batch, so a full
        # batch of 200 takes 35-70 s.
        with self._lock:
            share = self._latency_rng.uniform(0.5, 1.0)
        return ZEROBOUNCE_BATCH_MAX_S * share * size / BATCH_MAX

    def _unknown_rule(self, results: list[dict[str, Any]]) -> None:
        """Block the bulk host for an hour on the second unknown-heavy answer within an hour."""
        unknown = sum(1 for r in results if r["status"] == "unknown" and r["sub_status"] not in UNKNOWN_RULE_EXEMPT)
        if unknown <= ZEROBOUNCE_UNKNOWN_LIMIT:
            return
        now, hour = time.monotonic(), self.profile.period(ZEROBOUNCE_UNKNOWN_BLOCK_S)
        with self._rule_lock:
            while self._unknown_heavy and now - self._unknown_heavy[0] >= hour:
                self._unknown_heavy.popleft()
            self._unknown_heavy.append(now)
            if len(self._unknown_heavy) > 1:
                self.batch_quota.block("batch", hour)

    def rate_limit_body(self) -> dict[str, Any]:
        return {"error": "Too many requests. You have been temporarily blocked, please try again later."}

    def _usable(self, key: str | None) -> bool:
        with self._lock:
            return self.known_key(key, self.api_key) and self.credits > 0

    def _bill(self, results: list[dict[str, Any]]) -> int:
        """Charge one credit per non-unknown result (never below zero); returns the charge."""
        charge = sum(1 for r in results if r["status"] != "unknown")
        with self._lock:
            charge = min(charge, self.credits)
            self.credits -= charge
        return charge

    def _validate(self, req: SimRequest) -> SimResponse:
        if req.param("api_key") is None:
            return SimResponse(400, {"error": "Missing parameter: api_key"})
        if not self._usable(req.param("api_key")):
            return SimResponse(200, {"error": KEY_ERROR})
        email = req.param("email")
        if not email:
            return SimResponse(400, {"error": "Missing parameter: email"})
        if req.param("ip_address") is None:  # documented as required, though it may be blank
            return SimResponse(400, {"error": "Missing parameter: ip_address"})
        if self.profile.realistic:
            refused = self.validate_quota.take()
            if refused is not None:
                return _blocked(refused, self.rate_limit_body())
            with self._lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                self._sleep(self._validate_seconds())
            finally:
                with self._lock:
                    self.in_flight -= 1
        result = result_for(email)
        return SimResponse(200, result, billable_units=self._bill([result]))

    def validate_batch(self, req: SimRequest) -> SimResponse:
        """`POST /v2/validatebatch` (served by the bulk host; by the main host too in demo)."""
        try:
            body = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return SimResponse(400, {"error": "Invalid JSON body"})
        if not isinstance(body, dict) or "api_key" not in body:
            return SimResponse(400, {"error": "Missing parameter: api_key"})
        if not self._usable(body.get("api_key")):
            return SimResponse(200, {"email_batch": [], "errors": [{"error": BATCH_KEY_ERROR, "email_address": "all"}]})
        batch = body.get("email_batch")
        if not isinstance(batch, list) or not batch:
            return SimResponse(400, {"error": "Missing parameter: email_batch"})
        if len(batch) > BATCH_MAX:
            return SimResponse(400, {"error": f"email_batch allows at most {BATCH_MAX} emails per request"})
        if self.profile.realistic:
            refused = self.batch_quota.take()
            if refused is not None:
                return _blocked(refused, self.rate_limit_body())
            self._sleep(self._batch_seconds(len(batch)))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for item in batch:
            email = item.get("email_address") if isinstance(item, dict) else None
            if isinstance(email, str) and email.strip():
                results.append(result_for(email))
            else:
                errors.append({"error": "Missing email_address", "email_address": str(email or "")})
        charge = self._bill(results)
        if self.profile.realistic:
            self._unknown_rule(results)
        return SimResponse(200, {"email_batch": results, "errors": errors}, billable_units=charge)

    def _get_credits(self, req: SimRequest) -> SimResponse:
        if not self.known_key(req.param("api_key"), self.api_key):
            return SimResponse(200, {"Credits": "-1"})
        with self._lock:
            return SimResponse(200, {"Credits": str(self.credits)})
