"""A tenant's Odoo URL cannot reach a cloud metadata service or another address no Odoo is at.

Real: both Odoo clients and `leadgen odoo connect` over loopback sockets, the sandbox's OdooSim,
the session Postgres for the CLI. Simulated: DNS, by the guard's own resolver hook, so that a name
can resolve to the metadata address (as a hostile tenant's DNS would) without a real DNS server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import httpcore
import httpx
import psycopg
import pytest
from click.testing import CliRunner

from leadgen_core.errors import OdooError
from leadgen_core.odoo import RetryPolicy
from leadgen_core.odoo.client import OdooClient
from leadgen_core.odoo.guard import guarded_client, odoo_address_refusal, refusal_of
from leadgen_core.sandbox.odoo import OdooSim
from leadgen_dagster.cli import main
from tests.test_odoo_limits import SECRET, lookup
from tests.test_odoo_limits import client_for as limits_client_for

RETRY = RetryPolicy(max_attempts=4, base_backoff_s=5.0, max_backoff_s=5.0)  # a retry would show as 5 s


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),  # IPv4-mapped IPv6
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - the address under test, not a bind
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::a9fe:a9fe", "reserved"),  # IPv4-compatible IPv6 (deprecated): refused as reserved
        ("64:ff9b:1::a9fe:a9fe", "cloud metadata"),  # local-use NAT64 (RFC 8215) of 169.254.169.254
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("4000::1", "reserved"),
    ],
)
def test_addresses_no_odoo_is_at_are_refused_whatever_the_setting(address: str, why: str) -> None:
    ip = ipaddress.ip_address(address)
    for allow_private in (True, False):
        refusal = odoo_address_refusal(ip, allow_private=allow_private)
        assert refusal is not None and why in refusal, (address, allow_private, refusal)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.20", "172.16.0.9", "100.64.0.1", "fd12::1", "192.0.0.200", "fec0::1",
     "64:ff9b:1::a00:1"],
)  # fmt: skip
def test_private_and_loopback_addresses_follow_the_setting(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert odoo_address_refusal(ip, allow_private=True) is None
    refusal = odoo_address_refusal(ip, allow_private=False)
    assert refusal is not None and "ODOO_ALLOW_PRIVATE_ADDRESSES" in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses_are_admitted(address: str) -> None:
    assert odoo_address_refusal(ipaddress.ip_address(address), allow_private=False) is None


def client_for(protocol: str, url: str, **kw: Any) -> OdooClient:
    return limits_client_for(protocol, url, retry=RETRY, **kw)  # the limits tests' client, this file's retries


@pytest.mark.parametrize("protocol", ["jsonrpc", "json2"])
def test_the_clients_own_connections_are_guarded_and_refusals_are_not_retried(protocol: str) -> None:
    with OdooSim(db="db", users={"bot": SECRET}) as sim:
        assert asyncio.run(lookup(client_for(protocol, sim.base_url))) == []  # loopback: admitted by default
        started = time.monotonic()
        with pytest.raises(OdooError, match="loopback address") as refused:
            asyncio.run(lookup(client_for(protocol, sim.base_url, allow_private_addresses=False)))
        assert time.monotonic() - started < RETRY.base_backoff_s  # refused at once: no retry, no backoff
        assert SECRET not in str(refused.value)
    started = time.monotonic()
    with pytest.raises(OdooError, match=r"refused to connect to 169\.254\.169\.254: cloud metadata address"):
        asyncio.run(lookup(client_for(protocol, "http://169.254.169.254")))
    assert time.monotonic() - started < RETRY.base_backoff_s


def test_a_name_rebound_to_the_metadata_address_is_refused_at_the_connection() -> None:
    """The guard resolves the host as it connects and connects to what it checked: a name that
    answered with the sandbox's loopback address, then with the metadata address, gets one request
    through and the next refused, although the client, its URL and its pool are the same."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    async def two_requests(url: str) -> tuple[int, BaseException]:
        no_keepalive = httpx.Limits(max_keepalive_connections=0)  # a new connection a request, as after an idle close
        async with guarded_client(allow_private=True, resolve=resolve, limits=no_keepalive) as http:
            first = await http.post(url, json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "common", "method": "version", "args": []}})  # fmt: skip
            try:
                await http.post(url, json={})
            except httpx.ConnectError as exc:
                return first.status_code, exc
            raise AssertionError("the second connection was not refused")

    with OdooSim(db="db", users={"bot": SECRET}) as sim:
        port = sim.base_url.rsplit(":", 1)[1]
        status, exc = asyncio.run(two_requests(f"http://odoo.tenant-controlled.test:{port}/jsonrpc"))
    assert status == 200
    assert asked == ["odoo.tenant-controlled.test", "odoo.tenant-controlled.test"]
    message = refusal_of(exc)
    assert message is not None and "odoo.tenant-controlled.test (169.254.169.254): cloud metadata address" in message


def test_odoo_connect_refuses_a_metadata_url_and_saves_nothing(clean_db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LEADGEN_DATABASE_URL", clean_db.owner_dsn)
    monkeypatch.setenv("TENANT_SECRET_ACME_ODOO", SECRET)
    runner = CliRunner()
    assert runner.invoke(main, ["tenants", "add", "Acme"]).exit_code == 0
    args = ["odoo", "connect", "--tenant", "acme", "--protocol", "jsonrpc", "--db", "db", "--login", "bot",
            "--secret-env", "TENANT_SECRET_ACME_ODOO", "--url"]  # fmt: skip
    out = runner.invoke(main, [*args, "http://169.254.169.254"])
    assert out.exit_code == 2
    assert "refused to connect to 169.254.169.254: cloud metadata address" in out.output
    assert SECRET not in out.output and len(out.output.strip().splitlines()) == 1
    with OdooSim(db="db", users={"bot": SECRET}) as sim:
        monkeypatch.setenv("ODOO_ALLOW_PRIVATE_ADDRESSES", "false")
        out = runner.invoke(main, [*args, sim.base_url])
        assert out.exit_code == 2 and "loopback address (ODOO_ALLOW_PRIVATE_ADDRESSES is false)" in out.output
        monkeypatch.delenv("ODOO_ALLOW_PRIVATE_ADDRESSES")
        with psycopg.connect(clean_db.owner_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM odoo_connections").fetchone() == (0,)
        out = runner.invoke(main, [*args, sim.base_url])
        assert out.exit_code == 0, out.output
        assert "login ok" in out.output


def test_an_environment_proxy_is_used_and_its_address_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx mounts HTTP(S)_PROXY only for transports it builds: the guarded client mounts them
    itself, through the guard. A proxy at the metadata address is refused; NO_PROXY's hosts go
    direct, looked up and checked by the guard."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["169.254.169.254"]

    async def get(url: str) -> BaseException:
        async with guarded_client(allow_private=True, resolve=resolve) as http:
            with pytest.raises(httpx.ConnectError) as info:
                await http.get(url)
            return info.value

    monkeypatch.setenv("HTTP_PROXY", "http://169.254.169.254:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example.test")
    via_proxy = asyncio.run(get("http://odoo.example.test/jsonrpc"))
    assert asked == ["169.254.169.254"]  # the proxy was connected to, not the Odoo's host
    assert "169.254.169.254: cloud metadata address" in (refusal_of(via_proxy) or "")
    direct = asyncio.run(get("http://direct.example.test/jsonrpc"))
    assert asked[-1] == "direct.example.test"
    assert "direct.example.test (169.254.169.254): cloud metadata address" in (refusal_of(direct) or "")


def test_ipv4_addresses_are_tried_first() -> None:
    """One address after another, with no happy eyeballs: IPv4 first, so a blackholed IPv6 route
    does not cost a whole connect timeout before a working IPv4 address is tried."""
    from leadgen_core.odoo.guard import GuardedBackend

    tried: list[str] = []

    class Recorder:
        async def connect_tcp(self, host: str, port: int, **_: Any) -> Any:
            tried.append(host)
            raise httpcore.ConnectError("refused")

    async def resolve(host: str, port: int) -> list[str]:
        return ["2001:db8::5", "93.184.216.34", "2001:db8::6", "93.184.216.35"]

    backend = GuardedBackend(allow_private=True, resolve=resolve)  # 2001:db8::/32 is not global
    backend._inner = Recorder()  # type: ignore[assignment]
    with pytest.raises(httpcore.ConnectError):
        asyncio.run(backend.connect_tcp("odoo.example.test", 443, timeout=5))
    assert tried == ["93.184.216.34", "93.184.216.35", "2001:db8::5", "2001:db8::6"]
