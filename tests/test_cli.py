"""The admin CLI through click's runner, against the real session database as the owner.

Real: Postgres, the migrator, the commands' code. Nothing simulated.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from leadgen_dagster.cli import main
from tests.conftest import DbHandle

SEED_RULES = {"industries": ["technology"], "employee_range": {"min": 2, "max": 100},
              "incorporation_year": {"min": 2000, "max": 2025}}  # fmt: skip


@pytest.fixture
def cli(clean_db: DbHandle, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


def rows(dsn: str, query: str, *params: object) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def test_db_migrate_and_status(cli, clean_db: DbHandle) -> None:  # type: ignore[no-untyped-def]
    r = cli("db", "migrate")
    assert r.exit_code == 0 and "up to date" in r.output
    r = cli("db", "status")
    assert r.exit_code == 0 and "001  applied" in r.output and "pending" not in r.output


def test_tenants_add_list_deactivate(cli, clean_db: DbHandle) -> None:  # type: ignore[no-untyped-def]
    r = cli("tenants", "add", "Acme Robotics")
    assert r.exit_code == 0 and "acme-robotics" in r.output
    assert rows(clean_db.owner_dsn, "SELECT tenant_id, status FROM tenants") == [("acme-robotics", "active")]
    r = cli("tenants", "list", "--json")
    assert json.loads(r.output)[0]["tenant_id"] == "acme-robotics"
    r = cli("tenants", "deactivate", "Acme Robotics")  # by name
    assert r.exit_code == 0
    assert rows(clean_db.owner_dsn, "SELECT status FROM tenants") == [("inactive",)]
    r = cli("tenants", "activate", "acme-robotics")  # by id
    assert rows(clean_db.owner_dsn, "SELECT status FROM tenants") == [("active",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenants", "add", "   "), "1 to 200 characters"),
        (("tenants", "add", "!!!"), "cannot make a tenant id"),
        (("tenants", "deactivate", "nobody"), "no tenant with id or name 'nobody'"),
    ],
)
def test_tenants_bad_input(cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    assert r.exit_code == 2
    assert message in r.output and "Traceback" not in r.output


def test_duplicate_tenant_refused(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("tenants", "add", "Acme").exit_code == 0
    r = cli("tenants", "add", "ACME")
    assert r.exit_code == 2 and "already exists" in r.output


def test_icp_set_accepts_the_seed_payload(cli, clean_db: DbHandle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("tenants", "add", "Acme")
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(SEED_RULES))
    r = cli("icp", "set", "--tenant", "Acme", "--file", str(f))
    assert r.exit_code == 0, r.output
    stored = rows(clean_db.owner_dsn, "SELECT payload FROM icp_rules WHERE tenant_id = 'acme'")
    assert stored[0][0]["employee_range"] == {"min": 2, "max": 100}
    r = cli("icp", "show", "--tenant", "acme")
    assert r.exit_code == 0 and "SSIC sub-classes" in r.output


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"industries": ["x"], "employee_range": {"min": 50, "max": 10}}, "employee_range: Value error, min (50)"),
        ({"industries": ["x"], "employee_range": {"min": "many"}}, "employee_range.min"),
        ({"industries": [], "ssic_codes": []}, "at least one of 'industries' or 'ssic_codes'"),
        ({"ssic_codes": ["62A"]}, "ssic_codes"),
        ({"industries": ["x"], "weights": {"magic": 1}}, "unknown weight(s) ['magic']"),
        ({"industries": ["x"], "colour": "red"}, "colour"),
        ({"industries": ["x"], "employee_range": {"min": 2147483648}}, "employee_range.min"),
        ({"industries": ["x"], "weights": {"icp_fit": 1e308}}, "less than or equal to 1000"),
    ],
)
def test_icp_set_bad_input_names_the_field(cli, tmp_path: Path, payload: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    cli("tenants", "add", "Acme")
    f = tmp_path / "rules.json"
    f.write_text(json.dumps(payload))
    r = cli("icp", "set", "--tenant", "acme", "--file", str(f))
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_icp_set_unreadable_files(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("tenants", "add", "Acme")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = cli("icp", "set", "--tenant", "acme", "--file", str(bad))
    assert r.exit_code == 2 and "not valid JSON" in r.output
    r = cli("icp", "set", "--tenant", "acme", "--file", str(tmp_path / "missing.json"))
    assert r.exit_code == 2 and "no such file" in r.output


def test_icp_set_reads_a_bounded_amount_of_an_endless_or_huge_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """/dev/zero was read until memory ran out; now the first 4 MB decide."""
    cli("tenants", "add", "Acme")
    r = cli("icp", "set", "--tenant", "acme", "--file", "/dev/zero")
    assert r.exit_code == 2 and "larger than 1000000 characters" in r.output
    huge = tmp_path / "huge.json"
    huge.write_text('{"industries": ["x"], "pad": "' + "é" * 1_100_000 + '"}', encoding="utf-8")
    r = cli("icp", "set", "--tenant", "acme", "--file", str(huge))
    assert r.exit_code == 2 and "larger than" in r.output and len(r.output.splitlines()) == 1


@pytest.mark.parametrize(
    "bad",
    [
        "a" * 65 + "@example.com",  # RFC 5321: a local part of at most 64 octets
        "a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".com",  # 257 octets: past 254, each part valid
        "ann@-bad-.example.com",  # a domain label may not start or end with "-"
    ],
)
def test_suppress_refuses_addresses_no_mail_server_would_take(cli, clean_db: DbHandle, bad: str) -> None:  # type: ignore[no-untyped-def]
    cli("tenants", "add", "Acme")
    r = cli("suppress", "add", "--tenant", "acme", bad)
    assert r.exit_code == 2 and "not a valid email address" in r.output
    assert len(r.output) < 250, r.output  # the value is shown cut short, not echoed whole
    assert rows(clean_db.owner_dsn, "SELECT count(*) FROM suppression_emails") == [(0,)]
    ok = cli("suppress", "add", "--tenant", "acme", "a" * 64 + "@example.com")
    assert ok.exit_code == 0, ok.output


def test_odoo_connect_stores_a_reference_not_a_secret(cli, clean_db: DbHandle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TENANT_SECRET_ACME_ODOO", "super-secret-value")
    cli("tenants", "add", "Acme")
    r = cli(
        "odoo",
        "connect",
        "--tenant",
        "acme",
        "--url",
        "https://acme.example.com",
        "--db",
        "acme",
        "--protocol",
        "json2",
        "--login",
        "bot@acme.example.com",
        "--secret-env",
        "TENANT_SECRET_ACME_ODOO",
        "--no-check",  # acme.example.com is no Odoo; the check is tested below against the Odoo simulator
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("saved (not tested: --no-check) acme")
    (row,) = rows(clean_db.owner_dsn, "SELECT protocol, secret_ref, active FROM odoo_connections")
    assert row == ("json2", "env:TENANT_SECRET_ACME_ODOO", True)
    dump = rows(clean_db.owner_dsn, "SELECT row_to_json(o)::text FROM odoo_connections o")[0][0]
    assert "super-secret-value" not in dump and "super-secret-value" not in r.output


@pytest.mark.parametrize("protocol", ["jsonrpc", "json2"])
def test_odoo_connect_tests_version_and_login_before_saying_connected(
    cli, clean_db: DbHandle, monkeypatch, protocol
) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.sandbox.odoo import OdooSim

    cli("tenants", "add", "Acme")
    saved = "SELECT base_url FROM odoo_connections"
    with OdooSim(users={"bot": "right-key"}) as sim:
        base = ["odoo", "connect", "--tenant", "acme", "--db", "sandbox", "--protocol", protocol, "--login", "bot",
                "--secret-env", "TENANT_SECRET_ACME_ODOO"]  # fmt: skip
        monkeypatch.setenv("TENANT_SECRET_ACME_ODOO", "wrong-key")
        refused = cli(*base, "--url", sim.base_url)
        assert refused.exit_code == 2 and "refused the login 'bot'" in refused.output, refused.output
        assert "wrong-key" not in refused.output and "connected" not in refused.output
        dead = cli(*base, "--url", "http://127.0.0.1:9")
        assert dead.exit_code == 2 and "Odoo at http://127.0.0.1:9 is unreachable" in dead.output, dead.output
        assert rows(clean_db.owner_dsn, saved) == []  # a failed check saves nothing
        monkeypatch.setenv("TENANT_SECRET_ACME_ODOO", "right-key")
        ok = cli(*base, "--url", sim.base_url)
        assert ok.exit_code == 0, ok.output
        assert ok.output.startswith(f"connected acme to {sim.base_url}") and "Odoo 19.0, login ok" in ok.output
        assert rows(clean_db.owner_dsn, saved) == [(sim.base_url,)]
    unchecked = cli(*base, "--url", "http://127.0.0.1:9", "--no-check")
    assert unchecked.exit_code == 0 and "not tested" in unchecked.output
    assert rows(clean_db.owner_dsn, saved) == [("http://127.0.0.1:9",)]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--url", "ftp://x", "--url must be an http(s) URL"),
        ("--secret-env", "not a var", "--secret-env must be"),
        ("--protocol", "soap", "Invalid value for '--protocol'"),
    ],
)
def test_odoo_connect_bad_input(cli, flag: str, value: str, message: str) -> None:  # type: ignore[no-untyped-def]
    cli("tenants", "add", "Acme")
    args = {
        "--tenant": "acme",
        "--url": "https://a.example",
        "--db": "a",
        "--protocol": "jsonrpc",
        "--login": "me",
        "--secret-env": "ODOO_KEY",
    }
    args[flag] = value
    r = cli("odoo", "connect", *[x for kv in args.items() for x in kv])
    assert r.exit_code == 2 and message in r.output


def test_demo_seed_is_idempotent_and_loads_the_registry(cli, clean_db: DbHandle, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from leadgen_core.sandbox.cluster import SandboxCluster

    with SandboxCluster(registry_rows=400) as sandbox:
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        first = cli("demo", "seed")
        assert first.exit_code == 0, first.output
        assert "demo tenants ready: demo-alpha, demo-beta" in first.output and "new" in first.output
        query = """SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM odoo_connections),
                          (SELECT count(*) FROM icp_rules), (SELECT count(*) FROM companies),
                          (SELECT count(*) FROM staging_acra_companies), (SELECT count(*) FROM registry_refreshes),
                          (SELECT string_agg(secret_ref, ',' ORDER BY secret_ref) FROM odoo_connections)"""
        (before,) = rows(clean_db.owner_dsn, query)
        assert before[:3] == (2, 2, 2) and before[3] > 300 and before[5] == 1
        assert before[6] == "env:ODOO_SANDBOX_KEY,env:ODOO_SANDBOX_KEY"  # a reference, never the key
        again = cli("demo", "seed")
        assert again.exit_code == 0, again.output
        assert "0 new, 0 changed" in again.output, again.output
        assert rows(clean_db.owner_dsn, query) == [before]
    monkeypatch.delenv("ODOO_SANDBOX_URL")
    r = cli("demo", "seed")
    assert r.exit_code == 2 and "no sandbox Odoo" in r.output


def test_db_commands_report_an_unreachable_server(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", "postgresql://nobody:s3cret-pw@127.0.0.1:1/none")
    for command in ("migrate", "status"):
        r = cli("db", command)
        assert r.exit_code == 2 and "cannot connect" in r.output and "Connection refused" in r.output, r.output
        assert "s3cret-pw" not in r.output


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sandbox_up_serves_in_the_foreground_until_a_signal(tmp_path: Path, sig: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    env_file = tmp_path / "sandbox.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadgen_dagster.cli", "sandbox", "up", "--env-file", str(env_file),
         "--registry-rows", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert env_file.exists(), proc.stderr.read() if proc.poll() is not None else "no env file"
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert {"TAVILY_BASE_URL", "ODOO_SANDBOX_URL", "ACRA_API_URL", "LEADGEN_SANDBOX_WEB_PORT"} <= set(env)
        # every URL answers while it runs: an unauthenticated search is refused in Tavily's own shape
        assert httpx.post(f"{env['TAVILY_BASE_URL']}/search", json={"query": "x"}).status_code == 401
        assert proc.poll() is None  # still in the foreground
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "export TAVILY_BASE_URL=" in out and "sandbox stopped" in err
    with pytest.raises(httpx.ConnectError):  # and nothing is left listening
        httpx.post(f"{env['TAVILY_BASE_URL']}/search", json={"query": "x"}, timeout=2)


def test_dev_refuses_a_port_already_in_use() -> None:
    """A second `leadgen dev` on a taken port stops before starting anything, and says why."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", "--port", str(port), "--no-kickoff"])
    assert result.exit_code != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "Traceback" not in result.output
