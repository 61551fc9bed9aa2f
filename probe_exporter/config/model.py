"""The target/allow model: what a valid targets.toml means, and allow-rule patterns.

Allow rules let `/probe` reach addresses that are not listed. A pattern always names its
transport (tcp, udp, unix/unixs, unixd):

    tcp:10.20.0.0/16:2046              IPv4 network (a single address is a /32)
    tcp:[fd00::/64]:2046               IPv6 network: the prefix length inside the brackets
    tcp:*.kamailio.svc.cluster.local:2046
                                       host name; `*` stands for one or more characters
                                       within one label (it never crosses a `.`)
    udp:10.0.0.0/8:*                   port `*`: any port
    unix:/run/kamailio/*               path; `*` never crosses a `/`

Network rules judge the resolved address, so a name cannot reach outside them. IPv4-mapped
IPv6 addresses (`::ffff:10.0.0.1`) are judged, and connected to, as the IPv4 address they map.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..binrpc.address import PROTOCOLS, Address, Transport
from ..collectors import CollectorOptions
from ..limits import DEFAULT_LIMITS, ProbeLimits

__all__ = [
    "DEFAULT_MODULE",
    "DEFAULT_MODULE_TIMEOUT",
    "AllowRule",
    "Config",
    "IPAddress",
    "IPNetwork",
    "Module",
    "PoolSettings",
    "ResolvedTarget",
    "Target",
    "check_unix_path",
    "ip_literal",
    "looks_like_ipv4",
    "parse_pattern",
]

DEFAULT_MODULE = "default"
DEFAULT_MODULE_TIMEOUT = 5.0

_HOST_PATTERN = re.compile(r"[a-z0-9_*]([a-z0-9_*.-]*[a-z0-9_*])?")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class PoolSettings:
    idle_ttl: float = 300.0
    # Both maximums together stay well below the usual limit of 1,024 descriptors, leaving
    # room for HTTP clients and sources (README, "Limits and security").
    max_connections: int = 512
    per_target: int = 1
    max_adhoc_connections: int = 128


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    collectors: tuple[str, ...]  # as written: collector names, or ("all",)
    timeout: float
    options: CollectorOptions
    limits: ProbeLimits = DEFAULT_LIMITS


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    address: Address
    module: str | None = None
    timeout: float | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    xhttp_prom_url: str | None = None
    rtpengine_metrics_url: str | None = None


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One `[[allow]]` pattern; exactly one of network, host_pattern, path_pattern is set."""

    pattern: str
    transport: Transport
    module: str | None = None
    network: IPNetwork | None = None
    host_pattern: str | None = None  # lower case
    port: int | None = None  # None: any port (tcp/udp)
    path_pattern: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.pattern

    def matches_name(self, host: str) -> bool:
        return self.host_pattern is not None and self._matches(host)

    def matches_path(self, path: str) -> bool:
        return self.path_pattern is not None and self._matches(path)

    def contains(self, ip: IPAddress) -> bool:
        return self.network is not None and ip in self.network

    def _matches(self, text: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Config:
    pool: PoolSettings
    modules: Mapping[str, Module]
    targets: Mapping[str, Target]
    allow: tuple[AllowRule, ...]
    sha256: str
    # What is valid but probably not meant (e.g. an address without a protocol), one a line.
    warnings: tuple[str, ...] = ()

    @property
    def longest_timeout(self) -> float:
        """No probe under this config can take longer (the largest configured timeout)."""
        return max(
            [m.timeout for m in self.modules.values()]
            + [t.timeout for t in self.targets.values() if t.timeout is not None]
        )


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """What to probe: a listed target, or one made from an allowed address (then
    `target.address` holds the IP literal that was checked, and `rule` the rule that allowed
    it)."""

    target: Target
    module: Module
    rule: AllowRule | None = None

    @property
    def timeout(self) -> float:
        """The configured timeout: the target's if set, else the module's."""
        return self.target.timeout if self.target.timeout is not None else self.module.timeout


def parse_pattern(pattern: str, module: str | None) -> AllowRule:
    if any(ch.isspace() or not ch.isprintable() for ch in pattern):
        raise ValueError("whitespace or control characters in the pattern")
    protocol, sep, rest = pattern.partition(":")
    transport = PROTOCOLS.get(protocol.lower()) if sep else None
    if transport is None:
        raise ValueError(
            f"{pattern!r}: a pattern starts with its transport: tcp:, udp:, unix: or unixd:"
        )
    if transport in ("unix", "unixd"):
        check_unix_path(rest)
        if "**" in rest:
            raise ValueError(f"{pattern!r}: '**' means nothing here; '*' never crosses '/'")
        return AllowRule(
            pattern=pattern,
            transport=transport,
            module=module,
            path_pattern=rest,
            _regex=_glob_regex(rest, "/"),
        )
    host, port_text = _split_host_port(rest, pattern)
    port = _pattern_port(port_text, pattern)
    if host.startswith("["):
        network = _network(host[1:-1], pattern)
        if network.version == 4:
            raise ValueError(f"{pattern!r}: IPv4 networks go without brackets")
        return AllowRule(
            pattern=pattern, transport=transport, module=module, network=network, port=port
        )
    if host[:1].isdigit() and all(ch.isdigit() or ch in "./" for ch in host):
        return AllowRule(
            pattern=pattern,
            transport=transport,
            module=module,
            network=_network(host, pattern),
            port=port,
        )
    host = host.lower()
    if not _HOST_PATTERN.fullmatch(host) or ".." in host or len(host) > 253:
        raise ValueError(f"{pattern!r}: bad host name pattern {host!r}")
    labels = host.split(".")
    if any(label.isdigit() for label in labels) and all(
        label.isdigit() or label == "*" for label in labels
    ):
        raise ValueError(
            f"{pattern!r}: a glob over IPv4 addresses; write a network such as 10.0.0.0/24"
        )
    return AllowRule(
        pattern=pattern,
        transport=transport,
        module=module,
        host_pattern=host,
        port=port,
        _regex=_glob_regex(host, "."),
    )


def _split_host_port(rest: str, pattern: str) -> tuple[str, str]:
    if rest.startswith("["):
        inside, bracket, tail = rest.partition("]")
        if not bracket:
            raise ValueError(f"{pattern!r}: missing ']'")
        if tail.startswith("/"):
            raise ValueError(
                f"{pattern!r}: put the prefix length inside the brackets, "
                "as in tcp:[fd00::/64]:2046"
            )
        if not tail.startswith(":"):
            raise ValueError(f"{pattern!r}: expected ':PORT' after ']'")
        return inside + "]", tail[1:]
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{pattern!r}: expected HOST:PORT (the port may be '*')")
    if ":" in host:
        raise ValueError(f"{pattern!r}: IPv6 networks go in brackets, as in tcp:[fd00::/64]:2046")
    return host, port_text


def _pattern_port(text: str, pattern: str) -> int | None:
    if text == "*":
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{pattern!r}: bad port {text!r} (1-65535 or '*')")
    return int(text)


def _network(text: str, pattern: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{pattern!r}: bad network {text!r}: {exc}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        raise ValueError(f"{pattern!r}: write IPv4-mapped ranges as IPv4 networks")
    return network


def _glob_regex(glob: str, separator: str) -> re.Pattern[str]:
    parts = (f"[^{re.escape(separator)}]+" if ch == "*" else re.escape(ch) for ch in glob)
    return re.compile("".join(parts))


def looks_like_ipv4(host: str) -> bool:
    """True for anything the C library would read as an IPv4 address (`10.1`, `0x7f000001`)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def check_unix_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"unix socket path must be absolute: {path!r}")
    for segment in path.split("/")[1:]:
        if segment in ("", ".", ".."):
            raise ValueError(f"unix socket path with an empty, '.' or '..' segment: {path!r}")


def ip_literal(host: str) -> IPAddress | None:
    """The IP address a host string denotes literally, IPv4-mapped IPv6 read as IPv4."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
