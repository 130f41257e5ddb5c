"""The vendors resource: endpoints, keys and the dry-run switch of the enrichment stages.

Keys reach this resource only through `dg.EnvVar` (see `enrichment_resources`), so Dagster shows
the variable's name, never its value. Any field left unset falls back, at run time, to the
settings (the run worker's environment); a vendor without a key is the sandbox simulator.

Dry run: the run tag `leadgen/dry_run=true` (or `dry_run=True` here, for a whole deployment)
makes every stage forecast its vendor spend instead of paying: no billable call, no Odoo write,
no tenant row changed, the forecast in the asset's metadata. `stage.night_dry_run` reads both.
"""

import os

import dagster as dg
from pydantic import Field

from leadgen_core.enrich import VendorConfig

# field -> environment variable, for the secrets and the sandbox's web port
ENV_FIELDS = {
    "tavily_api_key": "TAVILY_API_KEY",
    "lusha_api_key": "LUSHA_API_KEY",
    "zerobounce_api_key": "ZEROBOUNCE_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
}
SANDBOX_WEB_PORT_ENV = "LEADGEN_SANDBOX_WEB_PORT"


class VendorsResource(dg.ConfigurableResource):
    """Tavily, Lusha, ZeroBounce and OpenAI endpoints for the enrichment stages."""

    tavily_base_url: str | None = Field(default=None, description="Tavily API base URL (default: TAVILY_BASE_URL).")
    tavily_api_key: str | None = Field(
        default=None, description="Tavily key; set only as dg.EnvVar('TAVILY_API_KEY'). Unset: the sandbox."
    )
    lusha_base_url: str | None = Field(default=None, description="Lusha API base URL (default: LUSHA_BASE_URL).")
    lusha_api_key: str | None = Field(
        default=None, description="Lusha key; set only as dg.EnvVar('LUSHA_API_KEY'). Unset: the sandbox."
    )
    zerobounce_base_url: str | None = Field(
        default=None, description="ZeroBounce API base URL, without /v2 (default: ZEROBOUNCE_BASE_URL)."
    )
    zerobounce_api_key: str | None = Field(
        default=None, description="ZeroBounce key; set only as dg.EnvVar('ZEROBOUNCE_API_KEY'). Unset: the sandbox."
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI base URL ending in /v1 (default: OPENAI_BASE_URL)."
    )
    openai_api_key: str | None = Field(
        default=None, description="OpenAI key; set only as dg.EnvVar('OPENAI_API_KEY'). Unset: the sandbox."
    )
    openai_model: str | None = Field(default=None, description="Extraction model (default: OPENAI_MODEL).")
    sandbox_web_port: int | None = Field(
        default=None,
        description="Port of the sandbox web simulator (LEADGEN_SANDBOX_WEB_PORT). Set: the crawler resolves only "
        "*.sandbox.test and may connect only to that loopback port. Unset: real DNS, public addresses only.",
    )
    timeout_s: float = Field(default=20.0, gt=0, description="Per-request timeout of every vendor call, seconds.")
    max_attempts: int = Field(default=4, ge=1, le=10, description="Attempts per vendor call (429/5xx/timeouts).")
    rate_per_s: dict[str, float] = Field(
        default_factory=dict,
        description="Per-vendor calls/second overriding the documented defaults (shared across processes).",
    )
    dry_run: bool = Field(
        default=False, description="Forecast spend instead of calling vendors, for every run (see leadgen/dry_run)."
    )

    def config(self) -> VendorConfig:
        return VendorConfig(
            tavily_base_url=self.tavily_base_url,
            tavily_api_key=self.tavily_api_key,
            lusha_base_url=self.lusha_base_url,
            lusha_api_key=self.lusha_api_key,
            zerobounce_base_url=self.zerobounce_base_url,
            zerobounce_api_key=self.zerobounce_api_key,
            openai_base_url=self.openai_base_url,
            openai_api_key=self.openai_api_key,
            openai_model=self.openai_model,
            sandbox_web_port=self.sandbox_web_port,
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            rates=dict(self.rate_per_s),
        )


def enrichment_resources() -> dict[str, VendorsResource]:
    """The resources the enrichment assets need, for `Definitions(resources=...)`.

    A variable set when the code location loads is wired as `dg.EnvVar` (resolved in the run
    worker, never stored); one that is unset is left to the settings fallback, because an EnvVar
    naming an unset variable fails the run even where the sandbox needs no key.
    """
    fields: dict[str, object] = {name: dg.EnvVar(env) for name, env in ENV_FIELDS.items() if os.environ.get(env)}
    if os.environ.get(SANDBOX_WEB_PORT_ENV):
        fields["sandbox_web_port"] = dg.EnvVar.int(SANDBOX_WEB_PORT_ENV)
    return {"vendors": VendorsResource(**fields)}  # type: ignore[arg-type]
