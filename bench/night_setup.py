"""The nightly benchmark's world: a registry, tenants with disjoint ICPs, and a Dagster instance.

Everything here is set up before the clock starts and through the product's own code: the
synthetic ACRA registry goes through the real loader and `upsert_companies` (which also records the
date's registry refresh, the barrier the night's first stage checks), tenants get ICP rules through
`save_rules` and an Odoo connection through `connect_odoo`, and the Dagster instance is rendered by
`write_dagster_home` with its run and event storage on the bench database (schema `dagster`).

Tenants get disjoint SSIC divisions, so with several tenants each one enriches its own companies
(a company that two tenants target is crawled and extracted once and reused by the other, which
would make a second tenant nearly free). Secondary SSIC codes can still put a company in two
tenants' candidate sets; the overlap of the selected targets is reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

from leadgen_core.acra.synth import generate_rows
from leadgen_core.db.pool import set_tenant
from leadgen_core.enrich.clients import VENDORS
from leadgen_core.enrich.context import RATE_BUCKET_PREFIX
from leadgen_core.icp.candidates import save_rules
from leadgen_core.icp.rules import parse_rules
from leadgen_core.registry.load import LoadCounts, load_rows
from leadgen_core.registry.upsert import upsert_companies
from leadgen_core.settings import Settings
from leadgen_core.spend.budget import caps_for, set_cap
from leadgen_core.tenants import add_tenant, connect_odoo

# SSIC division prefixes per tenant, in order; each group holds at least ~6% of the synthetic
# registry's live companies (leadgen_core.acra.synth weights), so REGISTRY_ROWS_PER_TARGET rows
# per target give every tenant more candidates than targets.
ICP_GROUPS: tuple[tuple[str, ...], ...] = (
    ("62", "63"),
    ("461", "462", "463", "464"),  # wholesale, split in two so that ten tenants fit (58 of its 100 codes)
    ("49", "52"),
    tuple(f"{d:02d}" for d in range(10, 34)),
    ("69", "70", "71", "73", "74"),
    ("56",),
    ("41", "42", "43"),
    ("64", "66", "68"),
    ("465", "466", "469"),  # the rest of wholesale (42 codes)
    ("47",),  # retail
)
MAX_TENANTS = len(ICP_GROUPS)
REGISTRY_ROWS_PER_TARGET = 30
MIN_REGISTRY_ROWS = 5_000
ODOO_SECRET_ENV = "ODOO_SANDBOX_KEY"  # the variable holding the sandbox Odoo key (a reference)
ODOO_LOGIN = "admin"
ODOO_DB = "sandbox"
# Caps sized so the whole night is enriched (the settings' defaults, e.g. TAVILY_MAX_QUERIES=300,
# stop a 1,000-target night early): per target, at most one search and one extract (Tavily
# credits), one Lusha lookup, ten addresses, and an upper bound of the extraction and rationale
# token reservations (the prompts are capped at EXTRACT_CORPUS_CHAR_LIMIT characters).
NIGHT_CAPS_PER_TARGET = {"tavily": 4, "lusha": 2, "zerobounce": 12, "openai": 30_000}


@dataclass(frozen=True)
class BenchTenant:
    tenant_id: str
    ssic_prefixes: tuple[str, ...]


def registry_rows(targets: int) -> int:
    return max(MIN_REGISTRY_ROWS, REGISTRY_ROWS_PER_TARGET * targets)


def load_registry(owner_dsn: str, *, rows: int, day: date, seed: int) -> LoadCounts:
    """Stage ROWS synthetic ACRA rows and upsert them for DAY, as the registry refresh would."""

    @contextmanager
    def conn() -> Iterator[psycopg.Connection]:
        with psycopg.connect(owner_dsn) as c, c.transaction():
            yield c

    counts = load_rows(
        enumerate(generate_rows(rows, seed=seed, malformed_rate=0.0), start=1),
        conn=conn,
        snapshot_date=day,
        source="bench:nightly",
    )
    with conn() as c:
        upsert_companies(c, snapshot_date=day)  # also marks the date's refresh finished
    return counts


def add_tenants(
    owner: psycopg.Connection, *, count: int, targets: int, odoo_url: str, night_caps: bool, nights: int = 1,
    default_caps: Mapping[str, int] | None = None,
) -> list[BenchTenant]:  # fmt: skip
    """COUNT active tenants with disjoint ICPs, a target cap of TARGETS and an Odoo connection.

    NIGHTS > 1 nights run in one clock day (the caps are daily): each vendor cap is NIGHTS times
    the night's (per target with NIGHT_CAPS, else DEFAULT_CAPS, the settings' defaults)."""
    caps = {v: per_target * targets for v, per_target in NIGHT_CAPS_PER_TARGET.items()} if night_caps else {}
    if not night_caps and nights > 1:
        caps = {v: int(c) for v, c in (default_caps or {}).items() if v != "targets"}
    tenants = []
    for i in range(count):
        with owner.transaction():
            t = BenchTenant(add_tenant(owner, f"Bench {i + 1}").tenant_id, ICP_GROUPS[i])  # id bench-<i+1>
            set_tenant(owner, t.tenant_id)
            save_rules(owner, t.tenant_id, parse_rules({"ssic_codes": list(t.ssic_prefixes)}))
            set_cap(owner, tenant_id=t.tenant_id, vendor="targets", cap=targets)
            for vendor, cap in caps.items():
                set_cap(owner, tenant_id=t.tenant_id, vendor=vendor, cap=cap * nights)
            connect_odoo(owner, tenant_id=t.tenant_id, base_url=odoo_url, db_name=ODOO_DB, protocol="jsonrpc",
                         login=ODOO_LOGIN, secret_env=ODOO_SECRET_ENV)  # fmt: skip
        tenants.append(t)
    return tenants


def settle_rate_buckets(owner: psycopg.Connection) -> list[str]:
    """Each vendor's shared rate bucket as any night after the first leaves it: idle, burst available.

    A bucket's first booking (its INSERT) gets no burst allowance: on a fresh database the first
    night's vendors would start one call per interval instead of with their burst. Production
    buckets exist from the nights before, so the benchmark starts from that steady state.
    """
    buckets = [RATE_BUCKET_PREFIX + v for v in VENDORS]
    owner.cursor().executemany(
        "INSERT INTO rate_limit_buckets (bucket, next_slot_at) VALUES (%s, now() - interval '1 hour') "
        "ON CONFLICT (bucket) DO UPDATE SET next_slot_at = EXCLUDED.next_slot_at",
        [(b,) for b in buckets],
    )
    return buckets


def live_candidates(owner: psycopg.Connection, prefixes: Sequence[str]) -> int:
    """Live companies whose primary or secondary SSIC code starts with one of PREFIXES."""
    patterns = [f"{p}%" for p in prefixes]
    row = owner.execute(
        "SELECT count(*) FROM companies WHERE is_live AND (industry_code LIKE ANY(%(p)s) "
        "OR secondary_ssic_code LIKE ANY(%(p)s))",
        {"p": patterns},
    ).fetchone()
    return int(row[0]) if row else 0


def caps_in_force(owner: psycopg.Connection, tenant_id: str, settings: Settings) -> dict[str, int]:
    """The tenant's vendor caps: its tenant_budgets rows over the settings' defaults."""
    with owner.transaction():
        set_tenant(owner, tenant_id)
        return caps_for(owner, tenant_id=tenant_id, defaults=settings.vendor_caps())


def dagster_home(path: Path, settings: Settings) -> Path:
    """A Dagster home whose instance is the product's (dagster.yaml rendered; the pools it sets are its own)."""
    import dagster as dg

    from leadgen_dagster.instance import write_dagster_home

    write_dagster_home(settings, path)
    with dg.DagsterInstance.from_config(str(path)):  # creates the storage tables once
        pass
    return path


def add_partitions(home: Path, tenants: Sequence[BenchTenant]) -> None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("tenants", [t.tenant_id for t in tenants])
