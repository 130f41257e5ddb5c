"""The exception tree of leadgen_core.

Every error the domain raises on purpose derives from `LeadgenError`; callers catch the branch
they can act on and let the rest propagate. Messages name the tenant and the operation and
never carry a credential (DSNs and keys are redacted before they reach a message).

    LeadgenError
    ├── ConfigError                 bad settings or bad user input (CLI prints it, exits 2)
    │   └── AuthRejected            (leads.sync_chunk) Odoo refused the tenant's credentials
    ├── DatabaseError               a database operation failed (names tenant and operation)
    │   ├── TenantIsolationError    a tenant-scoped operation without a valid tenant
    │   └── MigrationError          a migration failed or an applied file changed
    ├── PartitionKeyError           a partition key that is malformed or names no tenant
    ├── VendorError                 a vendor call failed (base for all vendor faults)
    │   ├── RateLimited             429 after bounded retries; carries retry_after
    │   ├── BudgetExhausted         the tenant's daily cap would be crossed
    │   │   └── DryRunSkipped       (spend.spender) a dry run reached a billable call and made none
    │   ├── VendorUnavailable       5xx, timeouts, connection errors after bounded retries
    │   ├── ChargeUncertain         a billable request timed out after sending; not re-sent
    │   ├── VendorAuthError         401/403: key missing or rejected (never retried)
    │   └── VendorResponseError     a malformed or schema-violating response
    ├── FetchError                  a website fetch was refused or failed
    │   ├── BlockedAddress          SSRF guard: private, loopback, link-local or metadata address
    │   ├── RobotsDisallowed        robots.txt forbids the path for our user agent
    │   ├── ResponseTooLarge        body larger than the configured limit
    │   │   └── BodyTooLarge        (crawler.fetch) the stream passed the limit while reading
    │   ├── FetchTimeout            (crawler.fetch) per-request timeout or the site's deadline
    │   ├── FetchUnreachable        (crawler.fetch) DNS failure or connection refused
    │   ├── TooManyRedirects        (crawler.fetch) more than CRAWLER_MAX_REDIRECTS hops
    │   └── UnsupportedContentType  (crawler.fetch) not HTML or plain text
    │       └── UnsupportedCharset  (crawler.fetch) a charset that does not decode text
    └── OdooError                   an Odoo call failed (JSON-RPC error object or JSON-2 4xx)
        ├── OdooAddressForbidden    the URL leads to an address no Odoo may be at (also a ConfigError)
        ├── OdooServerError         (odoo.client) Odoo answered with an error; odoo_name, http_status
        ├── OdooResponseTooLarge    (odoo.client) the answer passed the byte cap; reading stopped
        └── OdooWriteUncertain      (odoo.client) a write left but its answer was lost (retryable)

Classes without a module in brackets live here, in leadgen_core.errors; a test
(tests/test_errors_tree.py) fails when a LeadgenError subclass is missing from this tree.

Transient or final (`is_transient`): a vendor that is down (`VendorUnavailable`, which the
clients raise for 5xx, network time-outs and connection errors after their bounded retries), a
vendor still answering 429 (`RateLimited`), and a rate-limit queue that would wait too long
(`TimeoutError` from the shared limiter) may well work on the next attempt. A stage records such
an item `failed`, so a re-execution or the next night tries it again. Everything else a vendor
says (a spent budget, a refused key, a malformed answer, no data) is final for the night:
`degraded` with a reason.
"""

from __future__ import annotations


class LeadgenError(Exception):
    """Base of every deliberate leadgen error."""


class ConfigError(LeadgenError):
    """Settings or user input that cannot be used as given."""


class DatabaseError(LeadgenError):
    """A database operation failed; the message names the tenant and the operation."""


class TenantIsolationError(DatabaseError):
    """A tenant-scoped operation was attempted without a valid tenant."""


class MigrationError(DatabaseError):
    """A migration failed, or an already-applied migration file was changed."""


class PartitionKeyError(LeadgenError):
    """A partition key that cannot be parsed or names an unknown tenant."""


class VendorError(LeadgenError):
    """A vendor call failed.

    `charged` is what the vendor billed for the earlier requests of the same paid call before this
    one failed (a Lusha lookup is a prospecting request, then a search-and-enrich request): the
    Spender records it, so a failure in the second step never loses the credits of the first."""

    charged: int = 0

    def __init__(self, vendor: str, message: str) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor


class RateLimited(VendorError):
    """The vendor kept answering 429 after bounded retries."""

    def __init__(self, vendor: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(vendor, message)
        self.retry_after = retry_after


class BudgetExhausted(VendorError):
    """The tenant's daily cap for this vendor would be crossed by the call."""


class ChargeUncertain(VendorError):
    """A billable request was sent and timed out: the vendor may have charged it. It was not re-sent."""


class VendorUnavailable(VendorError):
    """5xx, timeout or connection failure after bounded retries."""


class VendorAuthError(VendorError):
    """The vendor rejected the credentials (401/403) or none were configured."""


class VendorResponseError(VendorError):
    """The vendor answered with a body that does not match its documented format."""


class FetchError(LeadgenError):
    """A website fetch failed or was refused."""


class BlockedAddress(FetchError):
    """The SSRF guard refused a private, loopback, link-local or metadata address."""


class RobotsDisallowed(FetchError):
    """robots.txt disallows the path for our user agent."""


class ResponseTooLarge(FetchError):
    """The response body exceeded the configured byte limit."""


class OdooError(LeadgenError):
    """An Odoo call failed."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class OdooAddressForbidden(OdooError, ConfigError):
    """The tenant's Odoo URL leads to an address no Odoo may be at (leadgen_core.odoo.guard): the
    same every time, so a configuration error, never retried."""


# Worth another attempt: the vendor or our shared queue to it was the problem, not the item. A
# ChargeUncertain item is retried alone on a later run, never by re-sending the request that timed out.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (VendorUnavailable, RateLimited, TimeoutError, ChargeUncertain)


def is_transient(exc: BaseException) -> bool:
    """True when EXC should leave the item `failed` (retried), not `degraded` (final)."""
    return isinstance(exc, TRANSIENT_ERRORS) and not isinstance(exc, BudgetExhausted)
