"""The codec against bytes captured from Kamailio 5.6.3 (tests/fixtures/captures/).

Each exchange has the request kamcmd sent (<name>_c2s.bin), Kamailio's answer (<name>_s2c.bin)
and what kamcmd printed for it (<name>_kamcmd.txt). Decoded replies must print exactly as kamcmd
printed them, and both directions must re-encode to the captured bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probe_exporter.binrpc.codec import (
    Fault,
    Packet,
    PacketReader,
    PacketType,
    Struct,
    Value,
    encode_fault,
    encode_reply,
    encode_request,
)

CAPTURES = Path(__file__).parent / "fixtures" / "captures"

# capture name -> the method and parameters kamcmd was given
REQUESTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "core.shmmem": ("core.shmmem", ()),
    "core.tcp_info": ("core.tcp_info", ()),
    "core.uptime": ("core.uptime", ()),
    "core.version": ("core.version", ()),
    "dispatcher.list": ("dispatcher.list", ()),
    "dlg.stats_active": ("dlg.stats_active", ()),
    "fault_no.such.method": ("no.such.method", ()),
    "fault_stats.fetch_noarg": ("stats.fetch", ()),
    "pkg.stats": ("pkg.stats", ()),
    "rtpengine.show_all": ("rtpengine.show", ("all",)),
    "stats.fetch_all": ("stats.fetch", ("all",)),
    "stats.fetchn_all": ("stats.fetchn", ("all",)),
    "stats.get_statistics_all": ("stats.get_statistics", ("all",)),
}
NAMES = sorted(REQUESTS)


def raw(name: str, direction: str) -> bytes:
    return (CAPTURES / f"{name}_{direction}.bin").read_bytes()


def header_cookie(packet: bytes) -> int:
    """The cookie field of a packet header, read independently of the codec."""
    len_size = ((packet[1] >> 2) & 3) + 1
    cookie_size = (packet[1] & 3) + 1
    return int.from_bytes(packet[2 + len_size : 2 + len_size + cookie_size])


def read_one(data: bytes) -> Packet:
    reader = PacketReader()
    reader.feed(data)
    packet = reader.next_packet()
    assert packet is not None
    assert reader.buffered == 0
    return packet


def kamcmd_text(values: list[Value]) -> str:
    """Values printed the way kamcmd prints a reply: one line per scalar, a tab per struct level,
    `name: ` before named members, `{` and `}` around struct members."""
    lines: list[str] = []

    def render(value: Value, name: str | None, depth: int) -> None:
        prefix = "\t" * depth + ("" if name is None else f"{name}: ")
        if isinstance(value, Struct):
            lines.append(prefix + "{")
            for member_name, member in value:
                render(member, member_name, depth + 1)
            lines.append("\t" * depth + "}")
        elif isinstance(value, float):
            # kamcmd prints a DOUBLE with an integral value as an integer; all captured ones are
            assert value.is_integer(), value
            lines.append(prefix + str(int(value)))
        elif isinstance(value, int | str):
            lines.append(prefix + str(value))
        else:
            raise TypeError(f"kamcmd never received a {type(value).__name__}")

    for value in values:
        render(value, None, 0)
    return "".join(line + "\n" for line in lines)


def test_every_capture_is_covered() -> None:
    names = {path.name.rsplit("_", 1)[0] for path in CAPTURES.glob("*_s2c.bin")}
    assert names == set(REQUESTS)


@pytest.mark.parametrize("name", NAMES)
def test_request_reencodes_byte_for_byte(name: str) -> None:
    captured = raw(name, "c2s")
    method, params = REQUESTS[name]
    assert encode_request(method, params, header_cookie(captured)) == captured
    packet = read_one(captured)
    assert packet.type is PacketType.REQUEST
    assert packet.values() == [method, *params]


@pytest.mark.parametrize("name", NAMES)
def test_reply_decodes_to_what_kamcmd_printed(name: str) -> None:
    packet = read_one(raw(name, "s2c"))
    printed = (CAPTURES / f"{name}_kamcmd.txt").read_text()
    assert packet.cookie == header_cookie(raw(name, "c2s"))
    if name.startswith("fault_"):
        assert packet.type is PacketType.FAULT
        with pytest.raises(Fault) as caught:
            packet.result()
        expected = re.fullmatch(r"error: (\d+) - (.*)\n", printed)
        assert expected is not None
        assert (caught.value.code, caught.value.message) == (int(expected[1]), expected[2])
    else:
        assert packet.type is PacketType.REPLY
        assert kamcmd_text(packet.result()) == printed


@pytest.mark.parametrize("name", NAMES)
def test_reply_reencodes_to_kamailios_bytes(name: str) -> None:
    captured = raw(name, "s2c")
    packet = read_one(captured)
    if packet.type is PacketType.FAULT:
        code, message = packet.values()
        assert isinstance(code, int)
        assert isinstance(message, str)
        assert encode_fault(code, message, packet.cookie) == captured
    else:
        assert encode_reply(packet.values(), packet.cookie) == captured


def test_value_types_kamailio_sends() -> None:
    (fetch,) = read_one(raw("stats.fetch_all", "s2c")).result()
    (fetchn,) = read_one(raw("stats.fetchn_all", "s2c")).result()
    assert isinstance(fetch, Struct)
    assert isinstance(fetchn, Struct)
    assert fetch.get("shmem.total_size") == "67108864"
    assert fetchn.get("shmem.total_size") == 67108864.0
    assert [name for name, _ in fetch] == [name for name, _ in fetchn]
    pkg = read_one(raw("pkg.stats", "s2c")).result()
    assert len(pkg) > 1
    assert all(isinstance(entry, Struct) for entry in pkg)
    assert -1 in [entry.get("rank") for entry in pkg if isinstance(entry, Struct)]
    (dispatcher,) = read_one(raw("dispatcher.list", "s2c")).result()
    assert isinstance(dispatcher, Struct)
    records = dispatcher.get("RECORDS")
    assert isinstance(records, Struct)
    (dispatcher_set,) = records.getall("SET")
    assert isinstance(dispatcher_set, Struct)
    targets = dispatcher_set.get("TARGETS")
    assert isinstance(targets, Struct)
    assert len(targets.getall("DEST")) == 2


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["c2s", "s2c"])
def test_capture_fed_one_byte_at_a_time(name: str, direction: str) -> None:
    captured = raw(name, direction)
    reader = PacketReader()
    for byte in captured[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_packet() is None
    reader.feed(captured[-1:])
    packet = reader.next_packet()
    assert packet == read_one(captured)
    assert packet.values() == read_one(captured).values()
    assert reader.next_packet() is None
    assert reader.buffered == 0


def test_all_captures_in_one_feed() -> None:
    captured = [raw(name, direction) for name in NAMES for direction in ("c2s", "s2c")]
    reader = PacketReader()
    reader.feed(b"".join(captured))
    packets = []
    while (packet := reader.next_packet()) is not None:
        packets.append(packet)
    assert packets == [read_one(data) for data in captured]
    assert [p.values() for p in packets] == [read_one(data).values() for data in captured]
    assert reader.buffered == 0
