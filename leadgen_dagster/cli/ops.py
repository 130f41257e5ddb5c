"""Operations commands: export scores, manage suppressions, show budgets.

They run as the owner with the tenant's setting applied, so row-level security scopes every
statement to the one tenant named by --tenant (id or name), as the pipeline's own role would.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from pathlib import Path

import click

from leadgen_core.clock import today_sg
from leadgen_core.errors import ConfigError
from leadgen_core.suppression import add_suppression, list_suppressions, remove_suppression
from leadgen_dagster.cli.common import friendly, settings, tenant_conn

EMAIL_RE = re.compile(r"^[a-z0-9._%+'-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}$")
LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN_RE = re.compile(rf"^(?=.{{4,253}}$){LABEL}(?:\.{LABEL})+$")
DEFAULT_PAGE = 1000


def today() -> date:
    return today_sg()


DATE_OPTION = click.option("--date", "day_opt", type=click.DateTime(["%Y-%m-%d"]), default=None)
TENANT_OPTION = click.option("--tenant", required=True, help="Tenant id or name.")


# --- export ---------------------------------------------------------------------------------
@click.group()
def export() -> None:
    """Export a tenant's data."""


@export.command("scores")
@TENANT_OPTION
@DATE_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--after", default=None, help="Cursor printed by the previous page.")
@click.option("--limit", type=int, default=DEFAULT_PAGE, show_default=True, help="Rows per page (1-10000).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (default stdout).")
@click.option("--all-dates", is_flag=True, help="Every date's score of each company (default: its latest only).")
@friendly
def export_scores_cmd(
    tenant: str,
    day_opt: datetime | None,
    fmt: str,
    after: str | None,
    limit: int,
    output: Path | None,
    all_dates: bool,
) -> None:
    """One page of lead scores, best first (each company once, its latest score, unless --date or
    --all-dates); the next page's cursor goes to stderr."""
    from leadgen_core.leads.export import export_scores, write_csv, write_json

    if all_dates and day_opt:
        raise ConfigError("--date and --all-dates exclude each other: one date, or every date")
    with tenant_conn(tenant) as (conn, tid):
        rows, cursor = export_scores(
            conn, tenant_id=tid, day=day_opt.date() if day_opt else None, after=after, limit=limit,
            latest=not all_dates,
        )  # fmt: skip
    buffer = io.StringIO()
    (write_csv if fmt == "csv" else write_json)(rows, buffer)
    if output is None:
        click.echo(buffer.getvalue(), nl=False)
    else:
        try:
            output.write_text(buffer.getvalue(), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"rows: {len(rows)}", err=True)
    click.echo(f"next cursor: {cursor}" if cursor else "next cursor: none (last page)", err=True)


# --- suppressions ---------------------------------------------------------------------------
def suppression_value(raw: str) -> tuple[str, str]:
    """(value, kind) of an email address or a domain, lower-cased; ConfigError for anything else."""
    value = raw.strip().lower()
    shown = raw if len(raw) <= 80 else f"{raw[:80]}... ({len(raw)} characters)"
    if "@" in value.removeprefix("@"):
        local, _, domain = value.rpartition("@")
        # RFC 5321 4.5.3.1: a local part of at most 64 octets, a path of at most 256 (254 between <>)
        if not EMAIL_RE.match(value) or len(local) > 64 or len(value) > 254 or not DOMAIN_RE.match(domain):
            raise ConfigError(f"{shown!r} is not a valid email address")
        return value, "email"
    value = value.removeprefix("@")
    if not DOMAIN_RE.match(value):
        raise ConfigError(f"{shown!r} is neither an email address nor a domain (like example.com)")
    return value, "domain"


@click.group()
def suppress() -> None:
    """Addresses and domains a tenant must never contact, sync or export."""


@suppress.command("add")
@TENANT_OPTION
@click.argument("value")
@click.option("--reason", default=None, help="Why (kept with the entry).")
@friendly
def suppress_add(tenant: str, value: str, reason: str | None) -> None:
    """Suppress VALUE: an email address, or a whole domain."""
    norm, kind = suppression_value(value)
    with tenant_conn(tenant) as (conn, tid):
        add_suppression(conn, tenant_id=tid, value=norm, kind=kind, reason=reason)
    click.echo(f"suppressed {kind} {norm} for {tid}")


@suppress.command("list")
@TENANT_OPTION
@friendly
def suppress_list(tenant: str) -> None:
    """List the tenant's suppressions."""
    with tenant_conn(tenant) as (conn, tid):
        rows = list_suppressions(conn, tenant_id=tid)
    if not rows:
        click.echo(f"no suppressions for {tid}")
    for value, kind, reason, created in rows:
        click.echo(f"{kind:<7} {value:<40} {created:%Y-%m-%d}  {reason}")


@suppress.command("remove")
@TENANT_OPTION
@click.argument("value")
@friendly
def suppress_remove(tenant: str, value: str) -> None:
    """Lift the suppression of VALUE."""
    norm, _ = suppression_value(value)
    with tenant_conn(tenant) as (conn, tid):
        deleted = remove_suppression(conn, tenant_id=tid, value=norm)
    if not deleted:
        raise ConfigError(f"{norm} is not suppressed for {tid}")
    click.echo(f"removed {norm} from {tid}'s suppressions")


# --- budgets --------------------------------------------------------------------------------
@click.group()
def budget() -> None:
    """Vendor spend against the daily caps."""


@budget.command("show")
@TENANT_OPTION
@DATE_OPTION
@friendly
def budget_show(tenant: str, day_opt: datetime | None) -> None:
    """Units spent and calls made per vendor on a Singapore day (default today), against the caps.

    The ledger counts the day the money was spent, whichever night's partition spent it.
    `uncertain` counts units of billable requests that timed out after being sent: the vendor may
    or may not have charged them (they were not re-sent; their items were left failed for a later
    attempt, a ZeroBounce batch's addresses validated one by one).
    """
    from leadgen_core.spend.budget import caps_for, spend

    day = day_opt.date() if day_opt else today()
    with tenant_conn(tenant) as (conn, tid):
        caps = caps_for(conn, tenant_id=tid, defaults=settings().vendor_caps())
        rows = spend(conn, tenant_id=tid, day=day, caps=caps)
    click.echo(f"budget of {tid} on {day}")
    click.echo(f"{'vendor':<12} {'used':>10} {'cap':>10} {'calls':>7} {'used%':>7} {'uncertain':>10}")
    for r in rows:
        pct = f"{100 * r.units / r.cap:.1f}" if r.cap else "-"
        flag = "" if r.within_cap else "  OVER CAP"
        click.echo(f"{r.vendor:<12} {r.units:>10} {r.cap:>10} {r.calls:>7} {pct:>7} {r.uncertain:>10}{flag}")
