"""Admin commands: database, tenants, ICP rules, Odoo connections, tenant vendor accounts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from leadgen_dagster.cli.common import friendly, owner_conn, resolve_tenant, settings, tenant_conn


@click.group()
def db() -> None:
    """Migrate the database and show migration status."""


@db.command("migrate")
@friendly
def db_migrate() -> None:
    """Apply pending migrations as the owner, ensure the app role, seed reference data."""
    from leadgen_core.db.migrate import migrate
    from leadgen_core.runtime import owner_dsn

    s = settings()
    applied = migrate(
        owner_dsn(s),
        app_role=s.app_role,
        app_password=s.app_password.get_secret_value() if s.app_password else None,
        group_role=s.group_role,
    )
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")


@db.command("status")
@friendly
def db_status() -> None:
    """List every migration and whether it is applied, pending or changed."""
    from leadgen_core.db.migrate import status
    from leadgen_core.runtime import owner_dsn

    for st in status(owner_dsn(settings())):
        when = st.applied_at.isoformat(timespec="seconds") if st.applied_at else "-"
        click.echo(f"{st.version}  {st.state:<8} {when:<26} {st.filename}")


@click.group()
def tenants() -> None:
    """Add, list and deactivate tenants."""


@tenants.command("add")
@click.argument("name")
@click.option(
    "--id", "tenant_id", default=None, metavar="ID",
    help="The tenant's id (lowercase letters, digits and '-'); by default a slug of NAME.",
)  # fmt: skip
@friendly
def tenants_add(name: str, tenant_id: str | None) -> None:
    """Create tenant NAME; its id is a slug of the name unless --id gives one."""
    from leadgen_core.tenants import add_tenant

    with owner_conn() as conn:
        t = add_tenant(conn, name, tenant_id)
    click.echo(f"created tenant {t.tenant_id} ({t.name})")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def tenants_list(as_json: bool) -> None:
    """List tenants with status and whether an Odoo connection is active."""
    from leadgen_core.tenants import directory

    with owner_conn() as conn:
        rows = directory(conn)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    if not rows:
        click.echo("no tenants yet: `leadgen tenants add NAME`")
    for r in rows:
        conn_state = "odoo connected" if r.has_active_connection else "no odoo connection"
        click.echo(f"{r.tenant_id:<24} {r.status:<9} {conn_state:<19} {r.name}")


@tenants.command("deactivate")
@click.argument("tenant")
@friendly
def tenants_deactivate(tenant: str) -> None:
    """Stop scheduling TENANT (id or name); its data is kept."""
    from leadgen_core.tenants import set_status

    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        set_status(conn, tid, "inactive")
    click.echo(f"deactivated {tid}")


@tenants.command("activate")
@click.argument("tenant")
@friendly
def tenants_activate(tenant: str) -> None:
    """Schedule TENANT (id or name) again."""
    from leadgen_core.tenants import set_status

    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        set_status(conn, tid, "active")
    click.echo(f"activated {tid}")


@click.group()
def icp() -> None:
    """Set and show a tenant's ideal-customer-profile rules."""


@icp.command("set")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@friendly
def icp_set(tenant: str, path: Path) -> None:
    """Validate rules from a JSON file and store them as the tenant's default rules."""
    from leadgen_core.errors import ConfigError
    from leadgen_core.icp.candidates import save_rules
    from leadgen_core.icp.rules import MAX_RULES_CHARS, parse_json_document, parse_rules

    try:
        with path.open("rb") as handle:  # bounded: /dev/zero or a named pipe must not be read forever
            data = handle.read(4 * MAX_RULES_CHARS + 1)  # UTF-8 takes up to 4 bytes a character
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if len(data) > 4 * MAX_RULES_CHARS:
        raise ConfigError(f"{path} is not valid JSON: larger than {MAX_RULES_CHARS} characters")
    payload = parse_json_document(text, what=str(path))
    rules = parse_rules(payload)
    with tenant_conn(tenant) as (conn, tid):
        save_rules(conn, tid, rules)
    click.echo(f"saved ICP rules for {tid}: {json.dumps(rules.model_dump(exclude_none=True))}")


@icp.command("show")
@click.option("--tenant", required=True, help="Tenant id or name.")
@friendly
def icp_show(tenant: str) -> None:
    """Print the tenant's rules and the SSIC codes they resolve to."""
    from leadgen_core.icp.candidates import load_rules
    from leadgen_core.icp.resolve import resolve_industries

    with tenant_conn(tenant) as (conn, tid):
        rules = load_rules(conn, tid)
        resolved = resolve_industries(conn, rules)
    click.echo(json.dumps(rules.model_dump(exclude_none=True), indent=2))
    click.echo(f"resolves to {len(resolved.codes)} SSIC sub-classes: {dict(resolved.by_term)}")
    if resolved.unmatched:
        click.echo(f"unmatched: {', '.join(resolved.unmatched)}")


@click.group()
def odoo() -> None:
    """Connect a tenant to its Odoo."""


@odoo.command("connect")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option("--url", required=True, help="Odoo base URL, e.g. https://acme.odoo.com")
@click.option("--db", "db_name", required=True, help="Odoo database name.")
@click.option("--protocol", required=True, type=click.Choice(["jsonrpc", "json2"]))
@click.option("--login", required=True, help="Odoo login (user).")
@click.option("--secret-env", required=True, help="Name of the environment variable holding the password/API key.")
@click.option("--no-check", is_flag=True, help="Save without testing the connection (version and login) first.")
@friendly
def odoo_connect(
    tenant: str, url: str, db_name: str, protocol: str, login: str, secret_env: str, no_check: bool
) -> None:
    """Test the tenant's Odoo (version, login), then record it; the secret itself stays in the environment."""
    import os

    from leadgen_core import event_loop
    from leadgen_core.errors import ConfigError
    from leadgen_core.odoo.probe import probe_odoo
    from leadgen_core.tenants import connect_odoo

    checked = ""
    with owner_conn() as conn:
        tid = resolve_tenant(conn, tenant)
        connect_odoo(
            conn, tenant_id=tid, base_url=url, db_name=db_name, protocol=protocol, login=login, secret_env=secret_env
        )
        # tested inside the transaction that saves it: a failed check saves nothing
        if not no_check:
            secret = os.environ.get(secret_env)
            if not secret:
                raise ConfigError(f"${secret_env} is not set: export it, or pass --no-check to save without testing")
            found = event_loop.run(
                probe_odoo(
                    protocol=protocol,  # type: ignore[arg-type]
                    base_url=url,
                    db=db_name,
                    login=login,
                    secret=secret,
                    allow_private_addresses=settings().odoo_allow_private_addresses,
                )
            )
            checked = f"; Odoo {found.server_version}, login ok"
    state = "connected" if not no_check else "saved (not tested: --no-check)"
    click.echo(f"{state} {tid} to {url} ({protocol}){checked}; secret read from ${secret_env} at run time")


@click.group()
def vendors() -> None:
    """Connect a tenant's own vendor accounts (bring your own key)."""


@vendors.command("connect")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option("--vendor", required=True, type=click.Choice(["lusha", "tavily", "zerobounce", "openai"]))
@click.option("--secret-env", required=True, help="Name of the environment variable holding the tenant's key.")
@click.option("--plan", default=None, help="Lusha plan (free|starter|pro|premium|scale; default premium).")
@click.option("--tier", default=None, type=int, help="OpenAI usage tier, 1-5 (default 1).")
@click.option("--key-kind", default=None, help="Tavily key kind (development|production; default production).")
@friendly
def vendors_connect(
    tenant: str, vendor: str, secret_env: str, plan: str | None, tier: int | None, key_kind: str | None
) -> None:
    """Record that TENANT pays VENDOR with its own key, read from $SECRET_ENV at run time (never stored)."""
    from leadgen_core.vendor_accounts import account_plan, connect_account

    chosen = account_plan(vendor, plan=plan, tier=tier, key_kind=key_kind)
    with tenant_conn(tenant) as (conn, tid):
        connect_account(conn, tenant_id=tid, vendor=vendor, secret_env=secret_env, plan=chosen)
    shown = f" ({'tier ' if vendor == 'openai' else ''}{chosen})" if chosen else ""
    click.echo(f"connected {tid} to its own {vendor} account{shown}; key read from ${secret_env} at run time")


@vendors.command("list")
@click.option("--tenant", required=True, help="Tenant id or name.")
@friendly
def vendors_list(tenant: str) -> None:
    """The tenant's own vendor accounts; every other vendor uses the platform's account."""
    from leadgen_core.vendor_accounts import VENDORS, list_accounts

    with tenant_conn(tenant) as (conn, tid):
        accounts = {a.vendor: a for a in list_accounts(conn, tenant_id=tid)}
    for vendor in VENDORS:
        a = accounts.get(vendor)
        if a is None:
            click.echo(f"{vendor:<11} platform account")
        else:
            click.echo(f"{vendor:<11} own account   key from ${a.secret_env}  plan {a.plan or '-'}")


@vendors.command("disconnect")
@click.option("--tenant", required=True, help="Tenant id or name.")
@click.option("--vendor", required=True, type=click.Choice(["lusha", "tavily", "zerobounce", "openai"]))
@friendly
def vendors_disconnect(tenant: str, vendor: str) -> None:
    """Forget the tenant's own VENDOR account: its next run uses the platform's."""
    from leadgen_core.errors import ConfigError
    from leadgen_core.vendor_accounts import disconnect_account

    with tenant_conn(tenant) as (conn, tid):
        if not disconnect_account(conn, tenant_id=tid, vendor=vendor):
            raise ConfigError(f"tenant {tid} has no own {vendor} account")
    click.echo(f"disconnected {tid}'s own {vendor} account; it uses the platform's from its next run")
