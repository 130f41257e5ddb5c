"""The SSRF guard: which URLs may be fetched and which addresses may be connected to.

A website address comes from a registry or a search engine, i.e. from strangers, so every hop of
every fetch is checked here before a socket is opened:

* `check_url` accepts only http/https, no credentials, and a plain DNS name or IP literal
  (no decimal/octal/hex IPv4 tricks, no "localhost", no single-label names);
* a `Resolver` turns the host into addresses (`SystemResolver` in production, `SandboxResolver`
  in the sandbox, which also maps sandbox sites onto the web simulator's loopback port);
* `AddressPolicy.check` refuses private, loopback, link-local, multicast, reserved, unspecified,
  CGNAT and cloud-metadata addresses, including IPv4 embedded in IPv6 (mapped, 6to4, NAT64,
  Teredo), plus 192.0.0.0/24 and fec0::/10, and any port but 80/443 (CRAWLER_ALLOWED_PORTS). An
  explicit (ip, port) allowlist exists only so the sandbox can reach its own loopback
  simulators; metadata addresses are refused even when allowlisted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import SplitResult, urlsplit

from leadgen_core.errors import BlockedAddress, FetchError
from leadgen_core.sandbox_contract import is_sandbox_host
from leadgen_core.settings import Settings

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HOST_CHARS = 253
SANDBOX_IP = "127.0.0.1"
DNS_CACHE_TTL_S = 30.0  # SystemResolver reuses an answer this long (a site's crawl takes seconds)
DNS_CACHE_MAX_HOSTS = 4096
# Metadata services are named explicitly: some (Oracle 192.0.0.192) count as "global" to ipaddress.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6 IMDS
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    }
)
CGNAT_NET = ipaddress.ip_network("100.64.0.0/10")
# Ranges Python's ipaddress (3.11) still counts as global: the whole IETF protocol-assignments
# block (it marks only 192.0.0.0/29 and two /32s private) and IPv6 site-local, deprecated by
# RFC 3879 but still routed inside some networks.
EXTRA_BLOCKED_NETS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignment address"),
    (ipaddress.ip_network("fec0::/10"), "site-local address"),
)
# A public web site answers on 80 or 443; any other port is refused unless CRAWLER_ALLOWED_PORTS
# says otherwise (an open admin port on a public host is an SSRF target too).
DEFAULT_ALLOWED_PORTS = frozenset({80, 443})
NAT64_NET = ipaddress.ip_network("64:ff9b::/96")
# One DNS label: letters, digits, hyphens inside; underscores are refused (never a web host).
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """A vetted URL split into the parts the fetcher needs."""

    url: str
    scheme: str
    host: str  # lower-case, IDNA-encoded, without brackets
    port: int
    path: str  # path plus "?query", never empty
    ip_literal: bool


class Resolver(Protocol):
    """Turns a host name into IP address strings; maps the port a logical URL connects to."""

    async def resolve(self, host: str) -> list[str]: ...

    def port_for(self, host: str, port: int) -> int: ...


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normalise_host(raw: str) -> tuple[str, bool]:
    """The canonical host and whether it is an IP literal; raises BlockedAddress for odd hosts."""
    host = raw.strip().lower().rstrip(".")
    if not host or len(host) > MAX_HOST_CHARS:
        raise BlockedAddress(f"refused host {raw!r}: empty or too long")
    ip = _as_ip(host)
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            raise BlockedAddress(f"refused host {raw!r}: IPv6 zone identifiers are not allowed")
        return str(ip), True
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise BlockedAddress(f"refused host {raw!r}: not a valid domain name") from exc
    labels = ascii_host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise BlockedAddress(f"refused host {raw!r}: not a fully qualified domain name")
    # "2130706433", "0177.0.0.1", "0x7f.1": resolvers read these as IPv4; a real TLD is never numeric.
    if _NUMERIC_LABEL.match(labels[-1]):
        raise BlockedAddress(f"refused host {raw!r}: numeric top-level label (obfuscated IP?)")
    return ascii_host, False


def check_url(url: str) -> Target:
    """Parse and vet a URL's shape (scheme, credentials, host); raises BlockedAddress or FetchError."""
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"malformed URL {url!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedAddress(f"refused URL {url!r}: scheme {scheme or '(none)'!r} is not http/https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BlockedAddress(f"refused URL {url!r}: credentials in URLs are not allowed")
    if parts.hostname is None:
        raise FetchError(f"malformed URL {url!r}: no host")
    host, literal = _normalise_host(parts.hostname)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        url=url.strip(),
        scheme=scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        path=path,
        ip_literal=literal,
    )


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address tunnels to, if any (mapped, 6to4, NAT64, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_NET:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.teredo is not None:
        return ip.teredo[1]  # the client address
    return None


def _refusal(ip: IPAddress) -> str | None:
    """Why an address may not be contacted, or None when it is public."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            why = _refusal(inner)
            return f"IPv6 embedding {inner}: {why}" if why else None
    checks: list[tuple[bool, str]] = [
        (ip.is_unspecified, "unspecified address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_link_local, "link-local address"),
        (ip.is_multicast, "multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT_NET, "carrier-grade NAT address"),
        *((ip.version == net.version and ip in net, why) for net, why in EXTRA_BLOCKED_NETS),
        (ip.is_private, "private address"),
        (ip.is_reserved, "reserved address"),
        (not ip.is_global, "non-global address"),
    ]
    for hit, why in checks:
        if hit:
            return why
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Which (ip, port) pairs may be connected to."""

    allowlist: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS

    @classmethod
    def sandbox(cls, ports: Iterable[int], *, ip: str = SANDBOX_IP) -> AddressPolicy:
        """A policy that also admits the simulators' own loopback ports (sandbox mode only)."""
        return cls(allowlist=frozenset((str(ipaddress.ip_address(ip)), int(p)) for p in ports))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        """The production policy: public addresses on the ports CRAWLER_ALLOWED_PORTS names."""
        return cls(allowed_ports=frozenset(settings.crawler_allowed_ports))

    def check(self, address: str, port: int) -> None:
        """Raise BlockedAddress unless (address, port) may be contacted."""
        ip = _as_ip(address)
        if ip is None:
            raise BlockedAddress(f"refused {address!r}: resolver returned a non-IP value")
        if ip in METADATA_ADDRESSES:
            raise BlockedAddress(f"refused {ip}:{port}: cloud metadata address")
        if (str(ip), port) in self.allowlist:
            return
        why = _refusal(ip)
        if why is not None:
            raise BlockedAddress(f"refused {ip}:{port}: {why}")
        if port not in self.allowed_ports:
            raise BlockedAddress(f"refused {ip}:{port}: port {port} is not allowed (CRAWLER_ALLOWED_PORTS)")


class SystemResolver:
    """The operating system's resolver (getaddrinfo in a worker thread, so the loop keeps going).

    A successful answer is reused for `ttl_s` (a crawl asks for the same host for robots.txt and
    every page, within seconds): a lookup and a thread hand-off per hop bought nothing. This does
    not weaken the guard: the fetcher still checks every address of the answer on every hop and
    connects to the address it checked, so an answer changing between lookups (rebinding) gains
    nothing from being looked up less often. Failures are not cached."""

    def __init__(self, *, ttl_s: float = DNS_CACHE_TTL_S, max_hosts: int = DNS_CACHE_MAX_HOSTS) -> None:
        self._ttl = ttl_s
        self._max = max(1, max_hosts)
        self._answers: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self.lookups = 0

    async def resolve(self, host: str) -> list[str]:
        if _as_ip(host) is not None:
            return [host]
        cached = self._answers.get(host)
        if cached is not None and cached[0] > time.monotonic():
            return list(cached[1])
        self.lookups += 1
        try:
            infos = await asyncio.to_thread(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchError(f"DNS lookup failed for {host}: {exc}") from exc
        seen: dict[str, None] = {}
        for _family, _type, _proto, _canon, sockaddr in infos:
            seen[str(sockaddr[0])] = None
        if not seen:
            raise FetchError(f"DNS lookup for {host} returned no addresses")
        if self._ttl > 0:
            self._answers[host] = (time.monotonic() + self._ttl, tuple(seen))
            self._answers.move_to_end(host)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)
        return list(seen)

    def port_for(self, host: str, port: int) -> int:
        return port


class SandboxResolver:
    """Sandbox DNS: `*.sandbox.test` is the web simulator on loopback; nothing else resolves.

    `overrides` names what chosen hosts resolve to, so tests can simulate a DNS record that points
    at a private address ({"evil.example": "10.1.2.3"}). `port`, when given, is the simulator's
    port: a sandbox URL on the default port 80/443 connects there instead.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        overrides: Mapping[str, str | Sequence[str]] | None = None,
        sandbox_ip: str = SANDBOX_IP,
    ) -> None:
        self._port = port
        self._ip = sandbox_ip
        self._overrides: dict[str, list[str]] = {}
        for host, value in (overrides or {}).items():
            self._overrides[host.lower().rstrip(".")] = [value] if isinstance(value, str) else list(value)

    async def resolve(self, host: str) -> list[str]:
        key = host.lower().rstrip(".")
        if key in self._overrides:
            return list(self._overrides[key])
        if _as_ip(key) is not None:
            return [key]
        if is_sandbox_host(key):
            return [self._ip]
        # The sandbox never leaks lookups of real names to real DNS.
        raise FetchError(f"DNS lookup failed for {host}: not a sandbox host")

    def port_for(self, host: str, port: int) -> int:
        if self._port is not None and is_sandbox_host(host) and port in DEFAULT_PORTS.values():
            return self._port
        return port
