"""The one configuration model.

Every knob the product has is read here, from the environment variable the predecessor used
(`SCHED_*`, vendor caps, crawler settings), so no other module calls `os.getenv`. Aliases that
the seeds documented (`SHORTLIST_DAILY_CAP`, `LEAD_THRESHOLD`) are honoured.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Lists come from the environment as CSV ("a,b"), not JSON; NoDecode leaves them to _split_csv.
CsvList = Annotated[list[str], NoDecode]

TIMEZONE = "Asia/Singapore"


def _csv(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class Settings(BaseSettings):
    """All runtime settings, with the defaults documented in the README."""

    # populate_by_name stays off: with it, pydantic-settings would also read a field's bare name
    # from the environment (HOME for `home`, DATABASE_URL for `database_url`).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False)

    # --- database -------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        validation_alias="LEADGEN_DATABASE_URL",
        description="Owner DSN. Unset: a private embedded Postgres (pgserver) under .leadgen/pg.",
    )
    app_database_url: SecretStr | None = Field(
        default=None,
        validation_alias="LEADGEN_APP_DATABASE_URL",
        description="DSN of the application role. Unset: the owner DSN with the user swapped.",
    )
    app_role: str = Field(default="leadgen_app", validation_alias="LEADGEN_APP_ROLE")
    app_password: SecretStr | None = Field(default=None, validation_alias="LEADGEN_APP_PASSWORD")
    group_role: str | None = Field(
        default=None,
        validation_alias="LEADGEN_GROUP_ROLE",
        description="This database's group role, read when migration 010 first runs. Unset: leadgen_rw_<database>.",
    )
    home: str = Field(default=".leadgen", validation_alias="LEADGEN_HOME")
    # Tenant secret references (`env:VARIABLE`) may only name variables with these prefixes
    # (leadgen_core.secrets owns the rule).
    secret_prefixes: CsvList = Field(
        default_factory=lambda: ["ODOO_", "TENANT_SECRET_"], validation_alias="LEADGEN_SECRET_PREFIXES"
    )
    # 6 per run worker keeps SCHED_TENANT_CONCURRENCY (10) nights within Postgres' default
    # max_connections of 100: 10 x (6 + 2 for Dagster's storage) + 10 for the webserver and daemon.
    pool_max_size: int = Field(default=6, validation_alias="LEADGEN_POOL_MAX_SIZE", ge=1)
    # The level of a run's console lines (python_logs.python_log_level of the rendered dagster.yaml):
    # INFO shows each stage's progress; DEBUG (`leadgen dev -v`) adds Dagster's per-event lines.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LEADGEN_LOG_LEVEL"
    )
    # Step retries for transient failures (registry download, vendor stages, Odoo), inside the run.
    step_retries: int = Field(default=2, validation_alias="STEP_RETRIES", ge=0, le=10)
    step_retry_delay_s: float = Field(default=30.0, validation_alias="STEP_RETRY_DELAY_S", ge=0, le=3600)

    # --- scheduling -----------------------------------------------------------------------
    sched_enabled: bool = Field(default=True, validation_alias="SCHED_ENABLED")
    sched_start_cron: str = Field(default="0 1 * * *", validation_alias="SCHED_START_CRON")
    # Tenant nights at once. Nights on shared vendor accounts move through the same buckets, so
    # the more of them run together (fair-shared, starts staggered), the nearer the whole night
    # comes to the shared floor; 3 at a time ran 10 tenants in four waves at 4.0 x that floor,
    # 10 at a time at 1.3 x (BENCHMARKS.md, ten tenants x 1,000).
    sched_tenant_concurrency: int = Field(default=10, validation_alias="SCHED_TENANT_CONCURRENCY", ge=1)
    # Workers per stage inside a run. The predecessor's 8 ran every vendor call of a company in
    # one worker; here each stage's workers only keep requests in flight while the shared rate
    # limiters (vendors) and the per-domain limiter (web sites) decide the pace, so more workers
    # cost nothing but waiting coroutines. 32 fills OpenAI's and Tavily's documented rates at
    # their typical latencies (bench/nightly.py).
    sched_company_concurrency: int = Field(default=32, validation_alias="SCHED_COMPANY_CONCURRENCY", ge=1)
    daily_cap_per_tenant: int = Field(
        default=1000,
        validation_alias=AliasChoices("SCHED_DAILY_CAP_PER_TENANT", "SHORTLIST_DAILY_CAP"),
        ge=0,
    )
    tenant_include: CsvList = Field(default_factory=list, validation_alias="SCHED_TENANT_INCLUDE")
    tenant_exclude: CsvList = Field(default_factory=list, validation_alias="SCHED_TENANT_EXCLUDE")
    sla_minutes: int = Field(default=90, validation_alias="SLA_MINUTES", ge=1)
    # seconds between the starts of the tenant nights the schedule launches together (leadgen_core.night.stagger)
    sched_tenant_stagger_s: float = Field(default=60.0, validation_alias="SCHED_TENANT_STAGGER_S", ge=0)
    catchup_nights: int = Field(default=3, validation_alias="SCHED_CATCHUP_NIGHTS", ge=0)
    # How long after the night's 01:00 (or after a caught-up registry run was created) the tenant
    # nights wait for the registry before starting on the last good snapshot, flagged stale.
    registry_deadline_minutes: int = Field(
        default=30, validation_alias=AliasChoices("REGISTRY_DEADLINE_MINUTES", "REGISTRY_WAIT_MINUTES"), ge=0
    )
    alert_consecutive_failures: int = Field(default=3, validation_alias="ALERT_CONSECUTIVE_FAILURES", ge=1)
    # true: each tenant night that succeeds posts one morning summary to the alert webhook
    notify_success: bool = Field(default=False, validation_alias="LEADGEN_NOTIFY_SUCCESS")
    ui_base_url: str = Field(default="http://127.0.0.1:3000", validation_alias="LEADGEN_UI_URL")

    # --- ACRA -----------------------------------------------------------------------------
    acra_api_url: str = Field(
        default="https://data.gov.sg/api/action/datastore_search", validation_alias="ACRA_API_URL"
    )
    acra_resource_ids: CsvList = Field(default_factory=list, validation_alias="ACRA_RESOURCE_IDS")
    acra_page_size: int = Field(default=5000, validation_alias="ACRA_PAGE_SIZE", ge=1, le=100_000)
    acra_max_pages: int = Field(default=1000, validation_alias="ACRA_MAX_PAGES", ge=1)
    # The download API (initiate-download, poll-download, CSV) fetches a whole dataset in ~3 requests;
    # `datastore` pages through datastore_search instead (small or filtered datasets).
    acra_fetch: Literal["download", "datastore"] = Field(default="download", validation_alias="ACRA_FETCH")
    acra_download_url: str = Field(default="https://api-open.data.gov.sg", validation_alias="ACRA_DOWNLOAD_URL")
    acra_api_key: SecretStr | None = Field(default=None, validation_alias="ACRA_API_KEY")
    # Keyless quota is 5 calls a minute (download-dataset page): polls 12 s apart never trip it.
    acra_poll_interval_s: float = Field(default=12.0, validation_alias="ACRA_DOWNLOAD_POLL_S", ge=0)
    acra_max_polls: int = Field(default=7, validation_alias="ACRA_DOWNLOAD_MAX_POLLS", ge=1, le=50)
    staging_batch_size: int = Field(default=500, validation_alias="STAGING_BATCH_SIZE", ge=1)
    upsert_max_per_job: int = Field(default=2000, validation_alias="UPSERT_MAX_PER_JOB", ge=1)

    # --- budgets (per tenant per day; per-tenant overrides live in tenant_budgets) --------
    # Defaults fit one 1,000-company night at the per-company costs measured in the realistic
    # sandbox, with headroom for reservations in flight (README, "Caps' arithmetic"):
    # ~2,500 OpenAI tokens, ~1.15 Tavily credits, ~4 ZeroBounce addresses per company.
    openai_daily_tokens_cap: int = Field(default=4_000_000, validation_alias="OPENAI_DAILY_TOKENS_CAP", ge=0)
    tavily_max_queries: int = Field(default=2_000, validation_alias="TAVILY_MAX_QUERIES", ge=0)
    # Lusha credits as billed (billing.creditsCharged): ~250 of a 1,000-company night's targets have
    # no address on the web, at ~5 credits each (see the README's vendor section).
    lusha_max_credits: int = Field(
        default=2_000, validation_alias=AliasChoices("LUSHA_MAX_CREDITS", "LUSHA_MAX_CONTACT_LOOKUPS"), ge=0
    )
    zerobounce_max_verifications: int = Field(default=6_000, validation_alias="ZEROBOUNCE_MAX_VERIFICATIONS", ge=0)

    # --- crawler --------------------------------------------------------------------------
    crawl_max_pages: int = Field(default=6, validation_alias="CRAWL_MAX_PAGES", ge=1, le=50)
    crawler_timeout_s: float = Field(default=10.0, validation_alias="CRAWLER_TIMEOUT_S", gt=0)
    crawler_site_deadline_s: float = Field(default=45.0, validation_alias="CRAWLER_SITE_DEADLINE_S", gt=0)
    crawler_user_agent: str = Field(
        default="leadgen-bot/1.0 (+https://example.invalid/bot)", validation_alias="CRAWLER_USER_AGENT"
    )
    crawler_domain_interval_s: float = Field(default=0.5, validation_alias="CRAWLER_DOMAIN_INTERVAL_S", ge=0)
    crawler_max_bytes: int = Field(default=2_000_000, validation_alias="CRAWLER_MAX_BYTES", ge=1024)
    crawler_max_redirects: int = Field(default=5, validation_alias="CRAWLER_MAX_REDIRECTS", ge=0)
    # Ports a public web host may be fetched on; the sandbox's loopback simulators are allowlisted apart.
    crawler_allowed_ports: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [80, 443], validation_alias="CRAWLER_ALLOWED_PORTS"
    )
    extract_corpus_char_limit: int = Field(default=35_000, validation_alias="EXTRACT_CORPUS_CHAR_LIMIT", ge=100)
    # tokens of website text one extraction sends, after boilerplate is dropped (enrich.corpus)
    extract_token_budget: int = Field(default=1_500, validation_alias="EXTRACT_TOKEN_BUDGET", ge=200)
    persist_crawl_corpus: bool = Field(default=False, validation_alias="PERSIST_CRAWL_CORPUS")
    retention_days: int = Field(default=180, validation_alias="RETENTION_DAYS", ge=1)

    # --- vendors (unset key => the sandbox simulators) ------------------------------------
    tavily_base_url: str | None = Field(default=None, validation_alias="TAVILY_BASE_URL")
    tavily_api_key: SecretStr | None = Field(default=None, validation_alias="TAVILY_API_KEY")
    lusha_base_url: str | None = Field(default=None, validation_alias="LUSHA_BASE_URL")
    lusha_api_key: SecretStr | None = Field(default=None, validation_alias="LUSHA_API_KEY")
    lusha_preferred_titles: CsvList = Field(
        default_factory=lambda: ["founder", "ceo", "managing director", "head of sales", "sales director"],
        validation_alias="LUSHA_PREFERRED_TITLES",
    )
    zerobounce_base_url: str | None = Field(default=None, validation_alias="ZEROBOUNCE_BASE_URL")
    zerobounce_api_key: SecretStr | None = Field(default=None, validation_alias="ZEROBOUNCE_API_KEY")
    # validatebatch is served by the bulk host (default https://bulkapi.zerobounce.net)
    zerobounce_bulk_base_url: str | None = Field(default=None, validation_alias="ZEROBOUNCE_BULK_BASE_URL")
    zerobounce_mode: Literal["single", "batch"] = Field(
        default="single",
        validation_alias="ZEROBOUNCE_MODE",
        description="single: concurrent /v2/validate calls (no shared 5/min bucket); batch: validatebatch.",
    )
    # A validation takes ~3.4 s on average (1-5 s, a 30 s tail) and the vendor allows 80,000 per
    # 10 s, so only this number paces the stage: ~3,500 addresses took ~27 minutes at 8 in flight,
    # 400 s at 32 (the longest link of a 1,000-company night); 64 halve that. A kill leaves at most
    # this many validations uncertain.
    zerobounce_in_flight: int = Field(
        default=64, validation_alias="ZEROBOUNCE_IN_FLIGHT", ge=1, le=200,
        description="Single validations in flight per stage run (ZEROBOUNCE_MODE=single).",
    )  # fmt: skip
    # Which documented limits apply: Lusha's plan (hourly/daily quotas), Tavily's key kind (RPM).
    lusha_plan: Literal["free", "starter", "pro", "premium", "scale", "legacy"] = Field(
        default="premium", validation_alias="LUSHA_PLAN"
    )
    tavily_key_kind: Literal["development", "production"] = Field(
        default="production", validation_alias="TAVILY_KEY_KIND"
    )
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_model: str = Field(default="gpt-4o-mini", validation_alias=AliasChoices("OPENAI_MODEL", "LANGCHAIN_MODEL"))
    # the key's usage tier: its documented gpt-4o-mini RPM and TPM size the shared buckets
    openai_tier: int = Field(default=1, validation_alias="OPENAI_TIER", ge=1, le=5)
    openai_tpm: float | None = Field(default=None, validation_alias="OPENAI_TPM", gt=0)
    sandbox_web_port: int | None = Field(
        default=None,
        validation_alias="LEADGEN_SANDBOX_WEB_PORT",
        ge=1,
        le=65535,
        description="Set by the sandbox: the crawler resolves only *.sandbox.test, to this loopback port.",
    )
    # Vendor rate limits in requests per minute, shared by every run (a Postgres-backed bucket).
    # Unset: the documented limits in leadgen_core.enrich.clients.DEFAULT_RATES (a Tavily
    # production key, Lusha's API plans, ZeroBounce's batch limit, tier-1 OpenAI with headroom).
    tavily_rpm: float | None = Field(default=None, validation_alias="TAVILY_RPM", gt=0)
    lusha_rpm: float | None = Field(default=None, validation_alias="LUSHA_RPM", gt=0)
    zerobounce_rpm: float | None = Field(default=None, validation_alias="ZEROBOUNCE_RPM", gt=0)
    openai_rpm: float | None = Field(default=None, validation_alias="OPENAI_RPM", gt=0)
    zerobounce_batch_size: int = Field(
        default=200,
        validation_alias="ZEROBOUNCE_BATCH_SIZE",
        ge=1,
        le=200,
        description="Addresses per validatebatch request: 200 is the documented limit (older pages said 100).",
    )
    vendor_cache_ttl_days: int = Field(default=30, validation_alias="VENDOR_CACHE_TTL_DAYS", ge=1)
    email_verify_ttl_days: int = Field(default=90, validation_alias="EMAIL_VERIFY_TTL_DAYS", ge=1)

    # --- scoring / export -----------------------------------------------------------------
    score_min_export: float = Field(
        default=0.66, validation_alias=AliasChoices("SCORE_MIN_EXPORT", "LEAD_THRESHOLD"), ge=0, le=1
    )
    freemail_policy: str = Field(default="low_confidence", validation_alias="FREEMAIL_POLICY")

    # --- odoo sync ------------------------------------------------------------------------
    odoo_sync_chunk_size: int = Field(
        default=100,
        validation_alias="ODOO_SYNC_CHUNK_SIZE",
        ge=1,
        le=1000,
        description="Companies per batched Odoo lookup and create (one search_read and one create per model).",
    )
    odoo_max_in_flight: int = Field(
        default=2,
        validation_alias="ODOO_MAX_IN_FLIGHT",
        ge=1,
        le=16,
        description="Odoo requests in flight per tenant database: a small Odoo has few workers, shared with its users.",
    )
    odoo_allow_private_addresses: bool = Field(
        default=True,
        validation_alias="ODOO_ALLOW_PRIVATE_ADDRESSES",
        description="Whether a tenant's Odoo URL may resolve to a private or loopback address (an Odoo on "
        "premises; the sandbox's). Metadata, link-local, multicast and reserved addresses are always refused.",
    )

    @field_validator("tenant_include", "tenant_exclude", "acra_resource_ids", "lusha_preferred_titles", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> list[str]:
        return _csv(value)

    @field_validator("crawler_allowed_ports", mode="before")
    @classmethod
    def _ports(cls, value: object) -> list[int]:
        ports: list[int] = []
        for part in _csv(value):
            if not part.isdigit() or not 1 <= int(part) <= 65535:
                raise ValueError(f"CRAWLER_ALLOWED_PORTS entry {part!r} must be a port number (1-65535)")
            ports.append(int(part))
        if not ports:
            raise ValueError("CRAWLER_ALLOWED_PORTS must name at least one port")
        return ports

    @field_validator("secret_prefixes", mode="before")
    @classmethod
    def _secret_prefixes(cls, value: object) -> list[str]:
        prefixes = _csv(value)
        for prefix in prefixes:
            # A short or lower-case prefix ("", "T") would let a reference reach almost any variable.
            if not re.match(r"^[A-Z][A-Z0-9_]{2,}$", prefix):
                raise ValueError(
                    f"LEADGEN_SECRET_PREFIXES entry {prefix!r} must be an upper-case name of 3+ characters"
                )
        return prefixes

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("freemail_policy")
    @classmethod
    def _freemail(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in {"exclude", "low_confidence"}:
            raise ValueError("FREEMAIL_POLICY must be 'exclude' or 'low_confidence'")
        return value

    def vendor_rpm(self, vendor: str) -> float | None:
        """The configured requests/minute of VENDOR, or None for the product's default."""
        value = getattr(self, f"{vendor}_rpm", None)
        return float(value) if value is not None else None

    def vendor_caps(self) -> dict[str, int]:
        """Default daily caps per vendor, in the vendor's billable unit."""
        return {
            "openai": self.openai_daily_tokens_cap,
            "tavily": self.tavily_max_queries,
            "lusha": self.lusha_max_credits,
            "zerobounce": self.zerobounce_max_verifications,
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
