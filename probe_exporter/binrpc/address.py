"""BINRPC addresses in Kamailio's own syntax (the ctl module's `binrpc` modparam and `kamcmd -s`).

Accepted forms (the protocol name is case-insensitive):

    tcp:HOST:PORT   tcp:HOST        TCP; the port defaults to 2049 (Kamailio's DEFAULT_CTL_PORT)
    udp:HOST:PORT   udp:HOST        UDP; same default port
    unix:/PATH      unixs:/PATH     unix stream socket (both spellings mean the same)
    unixd:/PATH                     unix datagram socket
    /PATH                           no protocol, starts with "/": unix stream socket
    HOST:PORT       HOST            no protocol: UDP, as kamcmd and Kamailio read it (port 2049)

HOST is a host name, an IPv4 literal or an IPv6 literal in brackets (`tcp:[::1]:2046`). PORT is a
number from 1 to 65535 (service names are not looked up). Unix paths must be absolute and fit
`sun_path` (at most 107 bytes). `str(address)` gives the canonical form, which always names the
protocol and the port, and parses back to an equal Address.
"""

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_PORT",
    "MAX_ADDRESS_LENGTH",
    "MAX_UNIX_PATH_BYTES",
    "Address",
    "AddressError",
    "Transport",
    "has_protocol",
    "parse_address",
]

Transport = Literal["tcp", "udp", "unix", "unixd"]

DEFAULT_PORT = 2049
# sockaddr_un.sun_path is 108 bytes on Linux, one of which is the terminating NUL.
MAX_UNIX_PATH_BYTES = 107
# Longer than any valid form (a 253-character host name plus protocol and port); checked first so
# that garbage is rejected without further work.
MAX_ADDRESS_LENGTH = 300
MAX_HOST_LENGTH = 253

# Kamailio's protocol names (case-insensitive) and the transport each means.
PROTOCOLS: Mapping[str, Transport] = {
    "tcp": "tcp",
    "udp": "udp",
    "unix": "unix",
    "unixs": "unix",
    "unixd": "unixd",
}
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_PROTOCOL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_WHITESPACE = re.compile(r"\s")
# The zone of a scoped IPv6 literal is a Linux interface name (1-15 bytes, no '/', ':' or
# whitespace) or index; brackets and '%' would make the canonical form ambiguous.
_ZONE = re.compile(r"[!-~]{1,15}")


class AddressError(ValueError):
    """A BINRPC address that cannot be parsed or used; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where a Kamailio ctl socket listens: tcp/udp use host and port, unix/unixd use path."""

    transport: Transport
    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.transport in ("tcp", "udp"):
            if not self.host or self.port is None or self.path is not None:
                raise AddressError(f"a {self.transport} address needs a host and a port, no path")
            if not 1 <= self.port <= 65535:
                raise AddressError(f"port {self.port} out of range (1-65535)")
        elif self.transport in ("unix", "unixd"):
            if not self.path or self.host is not None or self.port is not None:
                raise AddressError(f"a {self.transport} address needs a path, no host or port")
        else:
            raise AddressError(f"unknown transport {self.transport!r}")

    def __str__(self) -> str:
        if self.path is not None:
            return f"{self.transport}:{self.path}"
        host = f"[{self.host}]" if self.host is not None and ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"

    @property
    def is_stream(self) -> bool:
        return self.transport in ("tcp", "unix")


def parse_address(text: str) -> Address:
    """Parses a BINRPC address in Kamailio's syntax (see the module docstring for the forms).

    Raises AddressError with a message naming the problem.
    """
    if not isinstance(text, str):
        raise AddressError(f"address must be a string, not {type(text).__name__}")
    if not text:
        raise AddressError("empty address")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise AddressError(
            f"address too long ({len(text)} characters, at most {MAX_ADDRESS_LENGTH})"
        )
    if "\x00" in text:
        raise AddressError(f"NUL byte in address {text!r}")
    if _WHITESPACE.search(text):
        raise AddressError(f"whitespace in address {text!r}")

    protocol, sep, rest = text.partition(":")
    transport = PROTOCOLS.get(protocol.lower()) if sep else None
    if transport in ("tcp", "udp") and rest.startswith("//"):
        # The older Go exporter's URL form; Kamailio's syntax has no "//".
        raise AddressError(
            f"{text!r} is written as a URL: write {protocol}:{rest[2:]} (no '//'),"
            " as Kamailio's ctl module does"
        )
    if transport in ("unix", "unixd"):
        return Address(transport, path=_parse_path(rest, text))
    if transport is not None:
        host, port = _parse_host_port(rest, text)
        return Address(transport, host=host, port=port)
    if text.startswith("/"):
        return Address("unix", path=_parse_path(text, text))
    if sep and _PROTOCOL_LIKE.fullmatch(protocol) and not _is_port_text(rest):
        raise AddressError(
            f"unknown protocol {protocol!r} in {text!r} (known: tcp, udp, unix, unixs, unixd;"
            " a port is a number)"
        )
    if "/" in text:
        raise AddressError(f"unix socket path must be absolute: {text!r}")
    host, port = _parse_host_port(text, text)
    return Address("udp", host=host, port=port)


def has_protocol(text: str) -> bool:
    """Whether an address names its protocol (`tcp:`, `unix:`...) or is a path (unix stream):
    `HOST:PORT` alone is read as UDP, which is rarely what was meant."""
    protocol, sep, _ = text.partition(":")
    return text.startswith("/") or (bool(sep) and protocol.lower() in PROTOCOLS)


def _is_port_text(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_path(path: str, text: str) -> str:
    if not path:
        raise AddressError(f"missing unix socket path in {text!r}")
    if not path.startswith("/"):
        raise AddressError(f"unix socket path must be absolute: {path!r}")
    size = len(os.fsencode(path))
    if size > MAX_UNIX_PATH_BYTES:
        raise AddressError(
            f"unix socket path too long: {size} bytes, at most {MAX_UNIX_PATH_BYTES}: {path!r}"
        )
    return path


def _parse_host_port(rest: str, text: str) -> tuple[str, int]:
    """Splits `host`, `host:port`, `[v6]` or `[v6]:port` into a checked host and port."""
    if rest.startswith("["):
        literal, bracket, tail = rest[1:].partition("]")
        if not bracket:
            raise AddressError(f"missing ']' after the IPv6 literal in {text!r}")
        try:
            ip = ipaddress.IPv6Address(literal)
        except ValueError:
            raise AddressError(f"bad IPv6 literal {literal!r} in {text!r}") from None
        zone = ip.scope_id
        if zone is not None and (not _ZONE.fullmatch(zone) or any(c in zone for c in "/:%[]")):
            raise AddressError(f"bad IPv6 zone {zone!r} in {text!r} (an interface name)")
        host = ip.compressed
        if tail and not tail.startswith(":"):
            raise AddressError(f"expected ':PORT' after ']' in {text!r}")
        port_text: str | None = tail[1:] if tail else None
    else:
        host, sep, port_text_found = rest.partition(":")
        if ":" in port_text_found:
            raise AddressError(f"IPv6 literals need brackets, as in tcp:[::1]:2049: {text!r}")
        port_text = port_text_found if sep else None
        host = _check_host(host, text)
    return host, _parse_port(port_text, text)


def _check_host(host: str, text: str) -> str:
    if not host:
        raise AddressError(f"missing host in {text!r}")
    if host == "*":
        raise AddressError(f"'*' is a listen wildcard, not an address to connect to: {text!r}")
    if len(host) > MAX_HOST_LENGTH:
        raise AddressError(
            f"host name too long ({len(host)} characters, at most {MAX_HOST_LENGTH})"
        )
    if not _HOSTNAME.fullmatch(host):
        raise AddressError(f"bad host {host!r} in {text!r}")
    if host.isdigit():
        raise AddressError(f"{host!r} is not a host (a port without a host?) in {text!r}")
    # Host names are case-insensitive: one spelling keeps equal addresses equal.
    return host.lower()


def _parse_port(port_text: str | None, text: str) -> int:
    if port_text is None:
        return DEFAULT_PORT
    if not port_text:
        raise AddressError(f"missing port after ':' in {text!r}")
    if not _is_port_text(port_text):
        raise AddressError(f"bad port {port_text!r} in {text!r} (a number from 1 to 65535)")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise AddressError(f"port {port} out of range (1-65535) in {text!r}")
    return port
