"""Where a tenant's Odoo may be: every address its URL's host resolves to, checked as it connects.

A tenant's Odoo URL is given by the tenant. Pointed at a cloud metadata service
(`http://169.254.169.254`), the night would send it JSON-RPC requests carrying the tenant's Odoo
key, and an error text could echo what it answered. So every connection the Odoo client opens
(at `leadgen odoo connect`'s check and in the night) goes through `GuardedBackend`: it resolves
the host itself, refuses the connection if any address is one no Odoo can be at, and connects to
an address it checked. A name that resolves to a public address at `odoo connect` and to the
metadata address later (DNS rebinding) is refused at that later connection.

Always refused: cloud metadata addresses (`leadgen_core.crawler.ssrf.METADATA_ADDRESSES`),
link-local (169.254.0.0/16, fe80::/10), multicast, unspecified (0.0.0.0, ::), reserved (240.0.0.0/4)
and broadcast addresses, including IPv4 embedded in IPv6 (mapped, 6to4, NAT64, Teredo).
Private and loopback addresses are admitted by default, since an Odoo on premises or on a private
network is common and the sandbox's Odoo is on loopback; `ODOO_ALLOW_PRIVATE_ADDRESSES=false`
refuses them too, for a platform whose tenants' Odoos must all be on the internet.

An HTTP(S) proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, with `NO_PROXY`)
is used as httpx would use it; the client then connects to the proxy, so the proxy's address is
what the guard checks, and the proxy, not this process, resolves and reaches the Odoo's host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from leadgen_core.crawler.ssrf import EXTRA_BLOCKED_NETS, METADATA_ADDRESSES, IPAddress, _embedded_v4

Resolve = Callable[[str, int], Awaitable[list[str]]]

CGNAT_V4 = ipaddress.ip_network("100.64.0.0/10")
BROADCAST = ipaddress.IPv4Address("255.255.255.255")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible IPv6 (RFC 4291)
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class OdooAddressRefused(httpcore.ConnectError):
    """The Odoo URL's host resolved to an address the guard refuses; the message says which and why."""


def _embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: mapped, 6to4, NAT64 (also the local-use
    64:ff9b:1::/48 of RFC 8215), Teredo."""
    inner = _embedded_v4(ip)
    if inner is None and ip in LOCAL_NAT64:
        inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return inner


def odoo_address_refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why the Odoo client may not connect to IP, or None when it may."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            why = odoo_address_refusal(inner, allow_private=allow_private)
            return f"IPv6 embedding {inner}: {why}" if why else None
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_loopback:  # before "reserved": IPv6's ::1 lies in the reserved ::/8
        return None if allow_private else "loopback address (ODOO_ALLOW_PRIVATE_ADDRESSES is false)"
    if ip.is_reserved or ip == BROADCAST or (isinstance(ip, ipaddress.IPv6Address) and ip in IPV4_COMPATIBLE):
        return "reserved address"
    if allow_private:
        return None
    for net, what in EXTRA_BLOCKED_NETS:  # Python 3.11 counts these as global
        if ip in net:
            return f"{what} (ODOO_ALLOW_PRIVATE_ADDRESSES is false)"
    if ip.is_private or not ip.is_global or (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT_V4):
        return "private address (ODOO_ALLOW_PRIVATE_ADDRESSES is false)"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses of HOST, as the operating system's resolver gives them (an IP literal: itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with every address of the host checked before a connection."""

    def __init__(self, *, allow_private: bool, resolve: Resolve = system_resolve) -> None:
        self.allow_private = allow_private
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int, timeout: float | None = None) -> list[str]:
        """HOST's addresses, or OdooAddressRefused when any of them is refused (or there are none);
        the lookup counts against the connect TIMEOUT."""
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._resolve(host.strip("[]"), port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"cannot resolve {host} within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            why = odoo_address_refusal(ip, allow_private=self.allow_private)
            if why is not None:
                shown = host if host == str(ip) else f"{host} ({ip})"
                raise OdooAddressRefused(f"refused to connect to {shown}: {why}; no Odoo may be there")
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port, timeout)
        # IPv4 first: tried one after another (no happy eyeballs), a host whose IPv6 route is
        # blackholed would cost a whole connect timeout before its IPv4 address was tried
        addresses.sort(key=lambda a: ":" in a)
        failure: Exception | None = None
        for address in addresses:  # the checked addresses themselves, never a second lookup
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # noqa: S101 - addresses is never empty here
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise OdooAddressRefused("refused: an Odoo is reached over TCP, not a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    *, allow_private: bool, resolve: Resolve = system_resolve, **kwargs: Any
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`.

    httpx takes no network backend, so the one of the transport's httpcore pool is replaced;
    `tests/test_odoo_guard.py` checks that a refused address is refused through this transport."""
    transport = httpx.AsyncHTTPTransport(**kwargs)
    transport._pool._network_backend = GuardedBackend(allow_private=allow_private, resolve=resolve)
    return transport


def guarded_client(
    *,
    allow_private: bool,
    resolve: Resolve = system_resolve,
    limits: httpx.Limits | None = None,
    **client_kwargs: Any,
) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for a tenant's Odoo: every connection checked by `GuardedBackend`."""
    limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
    transport = guarded_transport(allow_private=allow_private, resolve=resolve, limits=limits)
    # httpx mounts the environment's proxies only when it builds its own transport: mounted here,
    # each through the guard too (NO_PROXY's patterns get a direct guarded transport)
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, url in environment_proxies().items():
        proxied = {"proxy": url} if url else {}
        mounts[pattern] = guarded_transport(allow_private=allow_private, resolve=resolve, limits=limits, **proxied)
    return httpx.AsyncClient(transport=transport, mounts=mounts, **client_kwargs)


def environment_proxies() -> dict[str, str | None]:
    """The URL patterns HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY name, as httpx reads them
    for a client whose transports it builds itself (None: no proxy for that pattern)."""
    from httpx._utils import get_environment_proxies  # httpx's own reading, so both agree

    return get_environment_proxies()


def refusal_of(exc: BaseException) -> str | None:
    """The guard's message when EXC (httpx's ConnectError, raised from httpcore's) is its refusal."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OdooAddressRefused):
            return str(current)
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
