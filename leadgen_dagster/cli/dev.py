"""`leadgen dev`: the whole product on one machine.

Starts (or joins) the database, migrates, starts the sandbox when no vendor is configured
(`runtime.uses_sandbox`, the same rule as `leadgen night`), seeds the demo tenants, renders the
Dagster instance, then runs `dagster dev` (webserver + daemon) on 127.0.0.1:3000 and launches
today's nights so the demo shows work at once. SIGTERM or SIGINT stops Dagster's whole process
group, the sandbox and the embedded database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import httpx

from leadgen_core.runtime import uses_sandbox
from leadgen_dagster.cli.common import friendly, settings
from leadgen_dagster.cli.sandbox import write_env_file

ROOT = Path(__file__).resolve().parents[2]
UI_WAIT_S = 180
STOP_GRACE_S = 9.0
LOG_LEVEL_ENV = "LEADGEN_LOG_LEVEL"  # rendered into python_logs.python_log_level of dagster.yaml
SANDBOX_ENV_FILE = "sandbox.env"  # under LEADGEN_HOME; `leadgen sandbox up --env-file` writes the same format


def _log(msg: str) -> None:
    click.echo(f"[leadgen dev] {msg}", err=True)


def prepare(env: dict[str, str], stack: ExitStack, *, sandbox: bool) -> dict[str, str]:
    """Database, migrations, sandbox, demo data and Dagster instance; returns the child environment."""
    import psycopg

    from leadgen_core.db.dsn import sqlalchemy_url
    from leadgen_core.db.migrate import migrate
    from leadgen_core.runtime import app_dsn, owner_dsn
    from leadgen_core.settings import Settings
    from leadgen_dagster.cli.demo import seed_demo
    from leadgen_dagster.instance import write_dagster_home

    s = settings()
    _log("starting the database" if s.database_url is None else "using LEADGEN_DATABASE_URL")
    owner = owner_dsn(s)
    applied = migrate(owner, app_role=s.app_role, group_role=s.group_role,
                      app_password=s.app_password.get_secret_value() if s.app_password else None)  # fmt: skip
    _log(f"migrations: {len(applied)} applied" if applied else "migrations: up to date")
    if sandbox:
        from leadgen_core.gc_tuning import tune_for_simulators
        from leadgen_core.sandbox.cluster import SandboxCluster

        cluster = stack.enter_context(SandboxCluster())
        tune_for_simulators()  # leadgen_core.gc_tuning: the simulators' logs are long-lived
        env.update(cluster.env())
        urls = [f"{k}={v}" for k, v in cluster.env().items() if k.endswith("_URL")]  # URLs only, never keys
        _log("sandbox simulators listening: " + ", ".join(urls))
        env_file = (ROOT / s.home / SANDBOX_ENV_FILE).resolve()
        write_env_file(env_file, cluster.env())
        stack.callback(env_file.unlink, missing_ok=True)  # stale URLs would point a shell at dead ports
        _log(f"sandbox variables written to {env_file} (load them: set -a; . {env_file}; set +a)")
    env.update(
        {
            "LEADGEN_DATABASE_URL": owner,
            "LEADGEN_APP_DATABASE_URL": app_dsn(s, owner=owner),
            "LEADGEN_DAGSTER_PG_URL": sqlalchemy_url(owner, search_path="dagster"),
            "DAGSTER_HOME": str((ROOT / s.home / "dagster_home").resolve()),
        }
    )
    if env.get("ODOO_SANDBOX_URL"):
        with psycopg.connect(owner) as conn, conn.transaction():
            ids = seed_demo(conn, odoo_url=env["ODOO_SANDBOX_URL"])
        _log(f"demo tenants: {', '.join(ids)}")
    os.environ.update(env)  # the instance below reads LEADGEN_DAGSTER_PG_URL
    write_dagster_home(Settings(), Path(env["DAGSTER_HOME"]))
    return env


def instance_setup(env: dict[str, str]) -> None:
    """The tenant partitions, before the daemon's first tick."""
    import dagster as dg
    import psycopg

    from leadgen_core.tenants import active_tenant_ids, directory

    with psycopg.connect(env["LEADGEN_APP_DATABASE_URL"]) as conn:
        tenants = active_tenant_ids(directory(conn), include=[], exclude=[])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as inst:
        missing = [t for t in tenants if not inst.has_dynamic_partition("tenants", t)]
        if missing:
            inst.add_dynamic_partitions("tenants", missing)
    _log(f"tenant partitions: {', '.join(tenants) or 'none'}")


def port_free_or_exit(port: int) -> None:
    """Refuse a UI port something already listens on: the start-up check would otherwise find that
    server (another `leadgen dev`, say) and launch today's nights on its instance."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise click.ClickException(
                f"port {port} on 127.0.0.1 is already in use (another leadgen dev or Dagster?): "
                "stop it or pass --port N"
            ) from None


def wait_for_ui(port: int, proc: subprocess.Popen[Any]) -> bool:
    deadline = time.monotonic() + UI_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def kickoff(port: int, env: dict[str, str]) -> None:
    """Launch today's registry refresh and one night per demo tenant through the GraphQL API."""
    from datetime import datetime

    import psycopg
    from dagster_graphql import DagsterGraphQLClient

    from leadgen_core.clock import SGT
    from leadgen_core.tenants import active_tenant_ids, directory
    from leadgen_dagster.tags import NIGHT_DATE_TAG, NIGHT_START_TAG

    now = datetime.now(SGT)
    day = now.date().isoformat()
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    # The registry run opens tonight's night as the 01:00 schedule would: night_launcher_sensor starts
    # every tenant's night once it succeeds.
    client.submit_job_execution("registry_refresh_job", repository_location_name="leadgen",
                                tags={NIGHT_DATE_TAG: day, NIGHT_START_TAG: now.isoformat(),
                                      "dagster/priority": "10"})  # fmt: skip
    with psycopg.connect(env["LEADGEN_APP_DATABASE_URL"]) as conn:
        tenants = active_tenant_ids(directory(conn), include=[], exclude=[])
    _log(f"launched registry_refresh_job {day}; night_launcher_sensor starts {len(tenants)} tenant night(s) after it")


def _wait(proc: subprocess.Popen[Any], stop: dict[str, int]) -> int:
    """Wait for `dagster dev`; once asked to stop, give it STOP_GRACE_S and then SIGKILL its group
    (a last resort: interrupted, Dagster's processes stop themselves)."""
    deadline: float | None = None
    while True:
        try:
            return proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if stop["sig"] and deadline is None:
            deadline = time.monotonic() + STOP_GRACE_S
        if deadline is not None and time.monotonic() > deadline:
            _log(f"Dagster did not stop within {STOP_GRACE_S:.0f}s: killing its process group")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return proc.wait()


@click.command("dev")
@click.option("--port", default=3000, show_default=True)
@click.option("--no-kickoff", is_flag=True, help="Do not launch today's nights at start.")
@click.option("-v", "--verbose", is_flag=True, help="Also print the runs' DEBUG event lines and Dagster's INFO lines.")
@friendly
def dev(port: int, no_kickoff: bool, verbose: bool) -> None:
    """Run the product: database, sandbox, demo tenants, Dagster UI and daemon on 127.0.0.1."""
    port_free_or_exit(port)
    s = settings()
    sandbox = uses_sandbox(s)
    env = dict(os.environ)
    if verbose:  # before prepare() renders the instance: every run's console logger at DEBUG
        env[LOG_LEVEL_ENV] = "DEBUG"
    with ExitStack() as stack:
        env = prepare(env, stack, sandbox=sandbox)
        instance_setup(env)
        # --log-level warning: no per-tick sensor and daemon chatter (info with -v). A run's own lines
        # are at LEADGEN_LOG_LEVEL: INFO by default, so no DEBUG event lines (python_logs, dagster.yaml).
        # -W: `dagster dev` warns that it is superseded by `dg dev` on every start (dg needs a dg project
        # layout this repo does not have); cwd: from the repo root Dagster warns that its dagster.yaml
        # template "will not be used" (the rendered copy in DAGSTER_HOME is the one in force).
        cmd = [sys.executable, "-W", "ignore:Function `dev_command` is superseded", "-m", "dagster", "dev",
               "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port),
               "--log-level", "info" if verbose else "warning"]  # fmt: skip
        stop = {"sig": 0}
        started: list[subprocess.Popen[Any]] = []

        def on_signal(signum: int, _frame: object) -> None:
            stop["sig"] = signum
            if started:  # Ctrl-C to Dagster's whole process group, as a terminal sends it to its foreground group
                try:
                    os.killpg(started[0].pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

        # Handlers first: a handled signal is reset to its default in the child, an ignored one stays
        # ignored. Started from a script in the background, SIGINT arrives ignored, and `dagster dev`
        # and its webserver then never saw the interrupt that stops them cleanly.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        proc = subprocess.Popen(cmd, env=env, cwd=env["DAGSTER_HOME"], start_new_session=True)  # noqa: S603
        started.append(proc)
        if wait_for_ui(port, proc):
            _log(f"Dagster UI: http://127.0.0.1:{port}")
            if not no_kickoff and sandbox:
                try:
                    kickoff(port, env)
                except Exception as exc:  # the UI is up; a failed kickoff must not take it down
                    _log(f"could not launch today's nights: {exc}")
        code = _wait(proc, stop)
        if stop["sig"]:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything left of the group (code servers)
            except ProcessLookupError:
                pass
            _log("stopped")
            return
    raise SystemExit(code)
