"""`leadgen demo seed`: the two demo tenants, their rules, budgets and Odoo connections, and the
sandbox's synthetic registry.

Idempotent: running it again updates the rules and connections and creates nothing twice; the
registry is staged and upserted for today (SGT) with the same code as the `acra_staging` and
`companies` assets, so a second run changes no company. The Odoo connections point at the
sandbox Odoo (ODOO_SANDBOX_URL); the secret is read at run time from the variable
ODOO_SANDBOX_KEY, never stored.
"""

from __future__ import annotations

import os
from datetime import date

import click
import psycopg

from leadgen_core import event_loop
from leadgen_core.clock import today_sg
from leadgen_core.db.pool import set_tenant
from leadgen_core.errors import ConfigError
from leadgen_core.icp.candidates import save_rules
from leadgen_core.icp.rules import parse_rules
from leadgen_core.registry.load import LoadCounts
from leadgen_core.registry.upsert import UpsertCounts, upsert_companies
from leadgen_core.spend.budget import set_cap
from leadgen_core.tenants import add_tenant, connect_odoo, directory, set_status
from leadgen_dagster.cli.common import friendly, owner_conn, settings

DEMO_TENANTS = {
    "Demo Alpha": {
        "rules": {
            "industries": ["software", "information technology"],
            "employee_range": {"min": 2, "max": 200},
            "incorporation_year": {"min": 2000, "max": 2025},
        },
        "protocol": "jsonrpc",
        "login": "admin",
    },
    "Demo Beta": {
        "rules": {"industries": ["logistics", "freight", "warehousing"], "ssic_codes": ["52"]},
        "protocol": "json2",
        "login": "leadgen-bot",
    },
}
DEMO_DAILY_TARGETS = 60  # keeps a sandbox night to a couple of minutes on a laptop
# The name of the variable holding the sandbox Odoo key (a reference, not a secret).
SANDBOX_SECRET_ENV = "ODOO_SANDBOX_KEY"  # noqa: S105


def seed_demo(conn: psycopg.Connection, *, odoo_url: str, db_name: str = "sandbox") -> list[str]:
    existing = {t.name: t.tenant_id for t in directory(conn)}
    ids = []
    for name, spec in DEMO_TENANTS.items():
        tenant_id = existing.get(name) or add_tenant(conn, name).tenant_id
        set_status(conn, tenant_id, "active")
        set_tenant(conn, tenant_id)
        save_rules(conn, tenant_id, parse_rules(spec["rules"]))
        set_cap(conn, tenant_id=tenant_id, vendor="targets", cap=DEMO_DAILY_TARGETS)
        connect_odoo(
            conn, tenant_id=tenant_id, base_url=odoo_url, db_name=db_name, protocol=str(spec["protocol"]),
            login=str(spec["login"]), secret_env=SANDBOX_SECRET_ENV,
        )  # fmt: skip
        ids.append(tenant_id)
    return ids


@click.group()
def demo() -> None:
    """Demo data for the sandbox."""


def seed_registry(day: date) -> tuple[LoadCounts, UpsertCounts]:
    """DAY's registry from the sandbox's ACRA datastore into staging and companies."""
    from leadgen_core.acra.ingest import stage_registry

    def progress(resource_id: str, seen: int, rejected: int) -> None:
        click.echo(f"  registry {resource_id}: {seen:,} rows read, {rejected:,} quarantined", err=True)

    staged = event_loop.run(stage_registry(settings(), conn=owner_conn, day=day, progress=progress))
    with owner_conn() as conn:
        return staged, upsert_companies(conn, snapshot_date=day)


@demo.command("seed")
@click.option("--odoo-url", default=None, help="Sandbox Odoo URL (default: $ODOO_SANDBOX_URL).")
@click.option("--registry/--no-registry", default=True, show_default=True,
              help="Also load today's synthetic registry from the sandbox ACRA datastore (ACRA_API_URL).")  # fmt: skip
@friendly
def demo_seed(odoo_url: str | None, registry: bool) -> None:
    """Create or update demo-alpha and demo-beta, and the registry, against the running sandbox."""
    url = odoo_url or os.environ.get("ODOO_SANDBOX_URL")
    if not url:
        raise ConfigError("no sandbox Odoo: start `leadgen sandbox up --env-file .leadgen/sandbox.env` and export it")
    with owner_conn() as conn:
        ids = seed_demo(conn, odoo_url=url)
    click.echo(f"demo tenants ready: {', '.join(ids)} (Odoo at {url})")
    if registry:
        day = today_sg()
        staged, counts = seed_registry(day)
        click.echo(
            f"registry for {day}: "
            f"{staged.staged:,} rows staged, {staged.rejected:,} quarantined; companies {counts.inserted:,} new, "
            f"{counts.updated:,} changed, {counts.unchanged:,} unchanged"
        )
