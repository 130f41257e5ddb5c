"""A tenant's own vendor accounts (bring your own key): the directory rows and their rules.

A tenant may pay Lusha, Tavily, ZeroBounce or OpenAI with its own account, as Clay allows. The
database holds only a secret *reference*, `env:VARIABLE`, under the one rule of
`leadgen_core.secrets` (a tenant prefix, never a variable the product reads for itself), and the
account's plan: Lusha's plan, OpenAI's usage tier or Tavily's key kind, which set the account's
documented limits (`vendors.limits`, `vendors.openai_tiers`). `leadgen vendors connect` records a
row as the owner, scoped to the tenant; a run reads it as the application role and resolves the
key from the run worker's environment (`OwnKey`), checking the rule again, so a reference
written by hand is refused before any request is made. Errors name the variable, never the key.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import psycopg

from leadgen_core.errors import ConfigError
from leadgen_core.secrets import SCHEME, check_secret_ref, resolve_secret_ref, secret_ref
from leadgen_core.vendors.limits import LUSHA_DEFAULT_PLAN, TAVILY_DEFAULT_KEY_KIND, lusha_plan, tavily_key_kind
from leadgen_core.vendors.openai_tiers import DEFAULT_TIER, tier_limits

VENDORS = ("lusha", "tavily", "zerobounce", "openai")
# which connect option names each vendor's plan (ZeroBounce accounts differ only in credits)
PLAN_OPTION = {"lusha": "--plan", "openai": "--tier", "tavily": "--key-kind"}

UPSERT_SQL = """
INSERT INTO tenant_vendor_accounts (tenant_id, vendor, secret_ref, plan) VALUES (%s, %s, %s, %s)
ON CONFLICT (tenant_id, vendor) DO UPDATE SET secret_ref = EXCLUDED.secret_ref, plan = EXCLUDED.plan,
    updated_at = now()
"""
# tenant_id is filtered in SQL as well as by RLS: the owner (often a superuser) bypasses RLS
LIST_SQL = """
SELECT vendor, secret_ref, plan FROM tenant_vendor_accounts WHERE tenant_id = %s ORDER BY vendor
"""
DELETE_SQL = "DELETE FROM tenant_vendor_accounts WHERE tenant_id = %s AND vendor = %s"


@dataclass(frozen=True)
class VendorAccount:
    """A tenant's account at one vendor: where its key is read from (never the key) and its plan."""

    tenant_id: str
    vendor: str
    secret_env: str
    plan: str | None

    @property
    def owner(self) -> str:
        return f"the {self.vendor} key of tenant {self.tenant_id}"

    def key(self, environ: Mapping[str, str]) -> OwnKey:
        """The key from ENVIRON under the secret rule, checked again here; ConfigError naming the variable."""
        value = resolve_secret_ref(f"{SCHEME}:{self.secret_env}", environ, owner=self.owner)
        return OwnKey(vendor=self.vendor, key=value, plan=self.plan)


@dataclass(frozen=True)
class OwnKey:
    """A resolved tenant key and its plan, for one run; the key never leaves memory."""

    vendor: str
    key: str = field(repr=False)
    plan: str | None


def check_vendor(vendor: str) -> str:
    if vendor not in VENDORS:
        raise ConfigError(f"unknown vendor {vendor!r}; expected one of {', '.join(VENDORS)}")
    return vendor


def account_plan(
    vendor: str, *, plan: str | None = None, tier: int | None = None, key_kind: str | None = None
) -> str | None:
    """The plan to record for VENDOR from the connect options; ConfigError for an option that does not fit."""
    check_vendor(vendor)
    given = {"--plan": plan, "--tier": tier, "--key-kind": key_kind}
    wrong = [name for name, value in given.items() if value is not None and PLAN_OPTION.get(vendor) != name]
    if wrong:
        fits = PLAN_OPTION.get(vendor)
        hint = f"it takes {fits}" if fits else "it takes no plan option"
        raise ConfigError(f"{wrong[0]} does not apply to {vendor}: {hint}")
    try:
        if vendor == "lusha":
            return lusha_plan(plan).value if plan is not None else LUSHA_DEFAULT_PLAN.value
        if vendor == "tavily":
            return tavily_key_kind(key_kind) if key_kind is not None else TAVILY_DEFAULT_KEY_KIND
        if vendor == "openai":
            chosen = DEFAULT_TIER if tier is None else tier
            tier_limits(chosen)
            return str(chosen)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("OPENAI_TIER", "--tier")) from None
    return None


def connect_account(
    conn: psycopg.Connection, *, tenant_id: str, vendor: str, secret_env: str, plan: str | None
) -> VendorAccount:
    """Record (or replace) the tenant's account at VENDOR; the reference is checked here."""
    check_vendor(vendor)
    try:
        ref = secret_ref(secret_env)
    except ConfigError as exc:
        raise ConfigError(f"--secret-env must be a tenant secret variable: {exc}") from None
    conn.execute(UPSERT_SQL, (tenant_id, vendor, ref, plan))
    return VendorAccount(tenant_id, vendor, secret_env, plan)


def disconnect_account(conn: psycopg.Connection, *, tenant_id: str, vendor: str) -> bool:
    """Forget the tenant's account at VENDOR (it goes back to the platform's); False when there was none."""
    check_vendor(vendor)
    return conn.execute(DELETE_SQL, (tenant_id, vendor)).rowcount > 0


def list_accounts(conn: psycopg.Connection, *, tenant_id: str) -> list[VendorAccount]:
    """The tenant's recorded accounts as stored (a reference the rule refuses is shown, not resolved)."""
    rows = conn.execute(LIST_SQL, (tenant_id,)).fetchall()
    return [
        VendorAccount(tenant_id, str(vendor), str(ref).partition(":")[2], None if plan is None else str(plan))
        for vendor, ref, plan in rows
    ]


def load_accounts(
    conn: psycopg.Connection, *, tenant_id: str, vendors: Collection[str] = VENDORS
) -> dict[str, VendorAccount]:
    """The tenant's accounts at VENDORS for a run; ConfigError when a stored reference breaks the rule."""
    found: dict[str, VendorAccount] = {}
    for vendor, ref, plan in conn.execute(LIST_SQL, (tenant_id,)).fetchall():
        if vendor not in vendors:
            continue
        owner = f"the {vendor} key of tenant {tenant_id}"
        try:
            name = check_secret_ref(str(ref))
        except ConfigError as exc:  # a row written before the rule, or by hand: no request is made
            raise ConfigError(f"{owner}: {exc}") from None
        found[str(vendor)] = VendorAccount(tenant_id, str(vendor), name, None if plan is None else str(plan))
    return found
