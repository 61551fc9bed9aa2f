"""What the parsers must do with any input whatsoever: the checks that fuzz/ drives with
generated inputs and tests/test_fuzz_regressions.py replays on every input that ever broke one.

Each check takes raw bytes and raises OracleFailure (or lets an unexpected exception through)
when the code under test misbehaves. They are deterministic: the same bytes give the same
verdict, so a saved input is a regression test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import math
import socket
from collections.abc import Callable
from typing import Any

from probe_exporter import config as config_module
from probe_exporter.binrpc.address import (
    MAX_UNIX_PATH_BYTES,
    Address,
    AddressError,
    parse_address,
)
from probe_exporter.binrpc.codec import (
    MAX_NESTING,
    Fault,
    Packet,
    PacketReader,
    PacketType,
    ProtocolError,
    Struct,
    Value,
    decode_values,
    encode_reply,
)
from probe_exporter.config import (
    Config,
    ConfigError,
    TargetRejected,
    TargetResolveError,
    UnknownModule,
    parse_config,
    resolve_target,
)


class OracleFailure(AssertionError):
    """The code under test did something that no input may make it do."""


def expect(condition: object, what: str) -> None:
    if not condition:
        raise OracleFailure(what)


# A small packet limit reaches the size check with short inputs.
SMALL_PACKET_LIMIT = 512


# -- the BINRPC decoder ------------------------------------------------------------------------


def _read(reader: PacketReader, chunks: list[bytes]) -> tuple[list[Packet], str | None]:
    """Feeds the chunks one by one, draining packets after each; stops at the first error."""
    packets: list[Packet] = []
    for chunk in chunks:
        reader.feed(chunk)
        try:
            while (packet := reader.next_packet()) is not None:
                packets.append(packet)
        except ProtocolError as exc:
            return packets, str(exc)
    return packets, None


def _split(data: bytes, cuts: bytes) -> list[bytes]:
    """Cuts `data` into chunks at the offsets that the bytes of `cuts` choose."""
    points = sorted({c * len(data) // 256 for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _depth(value: Value) -> int:
    if isinstance(value, Struct):
        return 1 + max((_depth(v) for _, v in value.members), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _same_values(a: Value, b: Value) -> bool:
    """Equal, types included; floats within one unit of the fixed point (the encoder truncates
    v*1000 toward zero as Kamailio does, so 16724.53 comes back as 16724.529)."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, float)
            and isinstance(b, float)
            and math.isclose(a, b, rel_tol=1e-12, abs_tol=1.001e-3)
        )
    if isinstance(a, Struct):
        return (
            isinstance(b, Struct)
            and len(a) == len(b)
            and all(
                na == nb and _same_values(va, vb)
                for (na, va), (nb, vb) in zip(a.members, b.members, strict=True)
            )
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_same_values(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


def _has_float(values: list[Value]) -> bool:
    for value in values:
        if isinstance(value, float):
            return True
        if isinstance(value, Struct) and _has_float([v for _, v in value.members]):
            return True
        if isinstance(value, list) and _has_float(value):
            return True
    return False


def _check_values(values: list[Value]) -> None:
    for value in values:
        expect(_depth(value) <= MAX_NESTING, "decoded values nest deeper than the limit")
    repr(values)  # consumers (debug output, logs) print them
    try:
        packet = encode_reply(values, 0)
    except ValueError:
        # A DOUBLE at the edge of the 64-bit fixed point may not re-encode after float
        # rounding: the encoder refuses it, which is right. Anything else must re-encode.
        expect(_has_float(values), "decoded values that the encoder refuses")
        return
    reader = PacketReader(len(packet))
    reader.feed(packet)
    reencoded = reader.next_packet()
    expect(reencoded is not None, "an encoded reply is not one packet")
    expect(reader.buffered == 0, "an encoded reply is more than one packet")
    assert reencoded is not None
    again = reencoded.values()
    expect(
        len(again) == len(values)
        and all(_same_values(a, b) for a, b in zip(values, again, strict=True)),
        "decode(encode(decode(x))) differs from decode(x)",
    )


def check_decoder(data: bytes) -> None:
    """The byte stream `data[4:]`, cut where `data[1:4]` says, through PacketReader and the
    value decoder: only packets, values, ProtocolError or Fault may come out; the cuts change
    nothing; every decoded value set survives a re-encode."""
    if len(data) < 4:
        return
    cuts, stream = data[:4], data[4:]
    limit = SMALL_PACKET_LIMIT if cuts[0] & 1 else 1 << 20
    whole, whole_error = _read(PacketReader(limit), [stream])
    pieces, pieces_error = _read(PacketReader(limit), _split(stream, cuts[1:]))
    expect(
        [(p.type, p.cookie, p.body) for p in whole] == [(p.type, p.cookie, p.body) for p in pieces],
        "packets depend on how the bytes arrive",
    )
    expect(whole_error == pieces_error, "errors depend on how the bytes arrive")
    for packet in whole:
        expect(len(packet.body) <= limit, "a packet larger than the reader's limit")
        expect(0 <= packet.cookie <= 0xFFFFFFFF, "a cookie outside 32 bits")
        check_body(packet.body, packet)


def check_body(body: bytes, packet: Packet | None = None) -> None:
    """decode_values on any body: values or ProtocolError, and result() agrees with it."""
    values: list[Value] | None
    try:
        values = decode_values(body)
    except ProtocolError as exc:
        expect(
            exc.offset is None or 0 <= exc.offset <= len(body),
            f"error offset {exc.offset} outside a body of {len(body)} bytes",
        )
        values = None
    if values is not None:
        _check_values(values)
    if packet is None:
        packet = Packet(PacketType.FAULT, 0, body)
    try:
        result = packet.result()
    except Fault as fault:
        expect(
            isinstance(fault.code, int) and isinstance(fault.message, str),
            "a Fault without an int code and a str message",
        )
        expect(values is not None, "a Fault from a body that does not decode")
    except ProtocolError:
        return
    else:
        expect(packet.type == PacketType.REPLY, f"result() of a {packet.type.name} packet")
        expect(
            values is not None and _same_values(result, values), "result() differs from values()"
        )


# -- the address parser ------------------------------------------------------------------------


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def check_address(data: bytes) -> None:
    """parse_address: an Address or an AddressError; an Address is well-formed and its
    canonical form parses back to itself."""
    try:
        address = parse_address(_text(data))
    except AddressError:
        return
    check_address_shape(address)
    expect(parse_address(str(address)) == address, "the canonical form does not round-trip")


def check_address_shape(address: Address) -> None:
    if address.transport in ("tcp", "udp"):
        host = address.host
        expect(
            host and address.port is not None and address.path is None,
            f"{address!r}: a tcp/udp address without host and port",
        )
        assert host is not None
        assert address.port is not None
        expect(1 <= address.port <= 65535, f"{address!r}: port out of range")
        expect(
            host.isascii() and not any(ch.isspace() or ch in "/[]" for ch in host),
            f"{address!r}: a host with whitespace, '/' or brackets",
        )
        # '%' only before the zone of a link-local IPv6 literal (fe80::1%eth0)
        expect(
            "%" not in host or ipaddress.IPv6Address(host).scope_id,
            f"{address!r}: '%' in a host that is not a scoped IPv6 literal",
        )
    else:
        path = address.path
        expect(path is not None and path.startswith("/"), f"{address!r}: not an absolute path")
        assert path is not None
        expect(
            len(path.encode("utf-8", "surrogateescape")) <= MAX_UNIX_PATH_BYTES,
            f"{address!r}: a path longer than sun_path",
        )
        expect("\x00" not in path, f"{address!r}: NUL in a path")


# -- /probe?target= against allow rules --------------------------------------------------------

ALLOW_RULES = """
[modules.fast]
timeout = 1.0

[[targets]]
name = "listed"
address = "tcp:192.0.2.1:2046"

[[allow]]
address = "tcp:10.20.0.0/16:2046"

[[allow]]
address = "udp:10.30.0.0/24:*"

[[allow]]
address = "tcp:[fd00::/64]:2046"

[[allow]]
address = "tcp:*.kam.test:2046"
module = "fast"

[[allow]]
address = "unix:/run/kamailio/*"

[[allow]]
address = "unixd:/run/kamailio/*.sock"
"""

_DNS_ANSWERS = (
    "10.20.1.1",
    "203.0.113.5",
    "::ffff:10.20.0.9",
    "::ffff:203.0.113.7",
    "fd00::7",
    "fe80::1",
    "127.0.0.1",
    "10.30.0.3",
)


def fake_dns(host: str) -> list[str]:
    """A deterministic resolver: a name's digest picks addresses in and out of the rules;
    names starting with "none." do not resolve."""
    if host.startswith("none."):
        return []
    digest = sum(host.encode()) * 2654435761 % (1 << 32)
    answers = [_DNS_ANSWERS[digest % 8], _DNS_ANSWERS[(digest >> 3) % 8]]
    return answers[: 1 + (digest >> 6) % 2]


async def _fake_lookup(host: str, port: int | None, kind: int) -> list[Any]:
    answers = fake_dns(host)
    if not answers:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [
        (socket.AF_INET6, kind, 6, "", (ip, port, 0, 0))
        if ":" in ip
        else (socket.AF_INET, kind, 6, "", (ip, port))
        for ip in answers
    ]


def _as_ipv4_when_mapped(text: str) -> str:
    ip = ipaddress.ip_address(text)
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip)


class TargetChecker:
    """Runs resolve_target under ALLOW_RULES on a private loop whose getaddrinfo is
    `fake_dns`: nothing is looked up or connected to."""

    def __init__(self) -> None:
        self.config: Config = parse_config(ALLOW_RULES)
        self.loop = asyncio.new_event_loop()
        self._real_lookup = config_module.LOOKUPS.lookup
        config_module.LOOKUPS.lookup = _fake_lookup  # type: ignore[method-assign]

    def close(self) -> None:
        config_module.LOOKUPS.lookup = self._real_lookup  # type: ignore[method-assign]
        self.loop.close()

    def __call__(self, data: bytes) -> None:
        """Every target is rejected, fails to resolve, or gives an address that one allow rule
        admits: an IP literal inside a network rule (or named by a host rule), a clean path.
        A byte 0x01 separates the target from a module name."""
        text, separator, module_text = _text(data).partition("\x01")
        module = module_text if separator else None
        try:
            resolved = self.loop.run_until_complete(
                resolve_target(self.config, text, module, resolve_timeout=1.0)
            )
        except (TargetRejected, TargetResolveError) as exc:
            expect("\n" not in str(exc), "a rejection message spans lines")
            return
        except UnknownModule:
            expect(
                module is not None and module not in self.config.modules,
                "UnknownModule for a defined module",
            )
            return
        rule = resolved.rule
        if rule is None:
            expect(text in self.config.targets, f"{text!r}: neither listed nor allowed")
            return
        address = resolved.target.address
        check_address_shape(address)
        expect(
            rule.transport == address.transport
            and (rule.port is None or rule.port == address.port),
            f"{text!r} -> {address}: transport or port outside rule {rule}",
        )
        if address.path is not None:
            segments = address.path.split("/")[1:]
            expect(
                all(s not in ("", ".", "..") for s in segments) and rule.matches_path(address.path),
                f"{text!r} -> {address}: a path that rule {rule} does not admit",
            )
            return
        assert address.host is not None
        try:
            ip = ipaddress.ip_address(address.host)
        except ValueError:
            raise OracleFailure(
                f"{text!r} -> {address}: connects to a name, not the address that was checked"
            ) from None
        expect(
            not (isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped),
            f"{text!r} -> {address}: an IPv4-mapped address left as IPv6",
        )
        if rule.network is not None:
            expect(ip in rule.network, f"{text!r} -> {address}: outside rule {rule}")
            return
        requested = parse_address(text)
        expect(
            requested.host is not None and rule.matches_name(requested.host),
            f"{text!r}: host rule {rule} does not match the requested name",
        )
        assert requested.host is not None
        expect(
            address.host in {_as_ipv4_when_mapped(a) for a in fake_dns(requested.host)},
            f"{text!r} -> {address}: not an address the name resolved to",
        )


_target_checker: TargetChecker | None = None


def check_target(data: bytes) -> None:
    """TargetChecker on one shared private loop."""
    global _target_checker
    if _target_checker is None:
        _target_checker = TargetChecker()
    _target_checker(data)


# -- targets.toml ------------------------------------------------------------------------------


def check_config(data: bytes) -> None:
    """parse_config: a Config or a ConfigError, never anything else; a Config is
    deterministic and its targets' addresses are well-formed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # load_config refuses non-UTF-8 before parsing
    try:
        config = parse_config(text)
    except ConfigError as exc:
        expect(str(exc), "a ConfigError without a message")
        return
    expect("default" in config.modules, "no default module")
    for name, target in config.targets.items():
        expect(name == target.name, f"target {name!r} filed under another name")
        check_address_shape(target.address)
        expect(
            target.module is None or target.module in config.modules,
            f"target {name!r} names an undefined module",
        )
    for rule in config.allow:
        kinds = (rule.network, rule.host_pattern, rule.path_pattern)
        expect(
            sum(kind is not None for kind in kinds) == 1,
            f"allow rule {rule} is not exactly one of network, host, path",
        )
    expect(parse_config(text).sha256 == config.sha256, "the same text hashes differently")


CHECKS: dict[str, Callable[[bytes], None]] = {
    "decoder": check_decoder,
    "address": check_address,
    "target": check_target,
    "config": check_config,
}
