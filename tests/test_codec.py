"""BINRPC codec: the worked examples of the wire format byte for byte, faults, odd but legal
input, and a ProtocolError naming the problem and its offset for each kind of bad input."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from probe_exporter.binrpc.codec import (
    DEFAULT_MAX_PACKET_SIZE,
    MAX_NESTING,
    BinRpcError,
    Fault,
    Packet,
    PacketReader,
    PacketType,
    ProtocolError,
    Struct,
    Value,
    decode_values,
    encode_fault,
    encode_reply,
    encode_request,
    new_cookie,
)


def h(text: str) -> bytes:
    """Hex with spaces, and "quoted" ASCII runs, as the examples are written."""
    out = bytearray()
    for token in re.findall(r'"[^"]*"|\S+', text):
        out += token[1:-1].encode() if token.startswith('"') else bytes.fromhex(token)
    return bytes(out)


def read_one(raw: bytes) -> Packet:
    reader = PacketReader()
    reader.feed(raw)
    packet = reader.next_packet()
    assert packet is not None
    assert reader.buffered == 0
    return packet


def record(value: Value) -> bytes:
    """The body of a reply holding only `value`: its record(s) as the encoder writes them."""
    return read_one(encode_reply([value], 0)).body


# ---------------------------------------------------------------------------------------------
# Worked examples


UPTIME_REQUEST = h('A1 03 0E 12 34 56 78 91 0C "core.uptime" 00')
UPTIME_REPLY = h(
    'A1 13 53 12 34 56 78 03 45 "now" 00 91 19 "Thu Aug 20 19:15:58 2026" 00'
    ' 95 09 "up_since" 00 91 19 "Thu Aug 20 18:15:58 2026" 00 75 "uptime" 00 20 0E 10 83'
)
UPTIME_VALUE = Struct(
    [
        ("now", "Thu Aug 20 19:15:58 2026"),
        ("up_since", "Thu Aug 20 18:15:58 2026"),
        ("uptime", 3600),
    ]
)
STATS_FETCH_REPLY = h(
    'A1 11 36 12 34 03 95 12 "core.rcv_requests" 00 21 35 00'
    ' 95 10 "shmem.free_size" 00 91 09 "66843008" 00 83'
)
STATS_FETCHN_REPLY = h(
    'A1 11 31 12 34 03 95 12 "core.rcv_requests" 00 22 13 88'
    ' 95 10 "shmem.free_size" 00 52 0F 90 27 5C 00 83'
)
UNKNOWN_COMMAND_FAULT = h('A1 33 1F 12 34 56 78 20 01 F4 91 1A "command foo.bar not found" 00')
BAD_REQUEST_FAULT = h('A1 30 23 00 20 01 90 91 1E "bad request: corrupted packet" 00')


@pytest.mark.parametrize(
    ("method", "params", "cookie", "expected"),
    [
        ("core.uptime", (), 0x12345678, UPTIME_REQUEST),
        ("stats.fetch", ("all",), 0x1234, h('A1 01 13 12 34 91 0C "stats.fetch" 00 41 "all" 00')),
        ("pkg.stats", ("rank", 1), 0x42, h('A1 00 14 42 91 0A "pkg.stats" 00 51 "rank" 00 10 01')),
        ("dlg.stats_active", (1,), 0x42, h('A1 00 15 42 91 11 "dlg.stats_active" 00 10 01')),
        ("core.echo", (2.5,), 0, h('A1 00 0F 00 91 0A "core.echo" 00 22 09 C4')),
    ],
)
def test_encode_request_worked_examples(
    method: str, params: tuple[int | str | float, ...], cookie: int, expected: bytes
) -> None:
    assert encode_request(method, params, cookie) == expected
    packet = read_one(expected)
    assert packet.type is PacketType.REQUEST
    assert packet.cookie == cookie
    assert packet.values() == [method, *params]


def test_request_defaults_to_no_params_and_cookie_zero() -> None:
    assert encode_request("core.uptime") == h('A1 00 0E 00 91 0C "core.uptime" 00')


def test_uptime_reply_both_ways() -> None:
    assert encode_reply([UPTIME_VALUE], 0x12345678) == UPTIME_REPLY
    packet = read_one(UPTIME_REPLY)
    assert (packet.type, packet.cookie, len(packet.body)) == (PacketType.REPLY, 0x12345678, 83)
    assert packet.result() == [UPTIME_VALUE]


def test_stats_fetch_reply_with_string_values() -> None:
    expected = Struct([("core.rcv_requests", "5"), ("shmem.free_size", "66843008")])
    assert read_one(STATS_FETCH_REPLY).result() == [expected]
    assert encode_reply([expected], 0x1234) == STATS_FETCH_REPLY


def test_stats_fetchn_reply_with_fixed_point_doubles() -> None:
    values = read_one(STATS_FETCHN_REPLY).result()
    assert values == [Struct([("core.rcv_requests", 5.0), ("shmem.free_size", 66843008.0)])]
    assert isinstance(values[0], Struct)
    assert all(type(value) is float for _, value in values[0])
    assert encode_reply(values, 0x1234) == STATS_FETCHN_REPLY


def test_shmmem_total_as_double_and_as_int() -> None:
    as_double = decode_values(h('03 65 "total" 00 52 3E 80 00 00 00 83'))
    as_int = decode_values(h('03 65 "total" 00 40 10 00 00 00 83'))
    assert as_double == [Struct([("total", 268435456.0)])]
    assert as_int == [Struct([("total", 268435456)])]
    assert isinstance(as_int[0], Struct)
    assert type(as_int[0].get("total")) is int


@pytest.mark.parametrize(
    ("raw", "code", "message", "cookie"),
    [
        (UNKNOWN_COMMAND_FAULT, 500, "command foo.bar not found", 0x12345678),
        (BAD_REQUEST_FAULT, 400, "bad request: corrupted packet", 0),
    ],
)
def test_faults_both_ways(raw: bytes, code: int, message: str, cookie: int) -> None:
    assert encode_fault(code, message, cookie) == raw
    packet = read_one(raw)
    assert (packet.type, packet.cookie) == (PacketType.FAULT, cookie)
    assert packet.values() == [code, message]
    with pytest.raises(Fault) as caught:
        packet.result()
    assert (caught.value.code, caught.value.message) == (code, message)
    assert str(caught.value) == f"fault {code}: {message}"
    assert isinstance(caught.value, BinRpcError)


def test_fault_ignores_values_after_code_and_message() -> None:
    packet = Packet(PacketType.FAULT, 1, h('10 07 21 "x" 00 10 02'))
    with pytest.raises(Fault, match=r"^fault 7: x$"):
        packet.result()


def test_fault_message_is_cut_like_kamailio() -> None:
    packet = read_one(encode_fault(500, "x" * 300, 1))
    assert packet.values() == [500, "x" * 255]


def test_empty_reply() -> None:
    raw = h("A1 11 00 12 34")
    assert encode_reply([], 0x1234) == raw
    assert read_one(raw).result() == []


def test_pseudo_array_of_unnamed_members() -> None:
    body = h(
        '03 95 09 "profiles" 00 03 71 "caller" 00 03 95 08 "inbound" 00 71 "trunk1" 00 83 83 83'
    )
    profiles = Struct([(None, "caller"), (None, Struct([("inbound", "trunk1")]))])
    assert decode_values(body) == [Struct([("profiles", profiles)])]
    assert record(Struct([("profiles", profiles)])) == body


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0x1234, "20 12 34"),
        (7, "10 07"),
        (0, "00"),
        (-1, "40 FF FF FF FF"),
        (0x80, "10 80"),
        (2**31 - 1, "40 7F FF FF FF"),
        (-(2**31), "40 80 00 00 00"),
        ("abcdef", '71 "abcdef" 00'),
        ("abcdefghi", '91 0A "abcdefghi" 00'),
        ("", "11 00"),
        ("x" * 300, "A1 01 2D" + ' "' + "x" * 300 + '" 00'),
        (2.5, "22 09 C4"),
        (-1.5, "82 FF FF FF FF FF FF FA 24"),
        (268435456.0, "52 3E 80 00 00 00"),
        (0.0, "02"),
        (b"abcdef", '66 "abcdef"'),
        (b"\xff" * 65535, "A6 FF FF" + " FF" * 65535),
        ([1, "a"], '04 10 01 21 "a" 00 84'),
        ([], "04 84"),
        (Struct(), "03 83"),
        (Struct([(None, 1), ("n", [])]), '03 10 01 25 "n" 00 04 84 83'),
    ],
)
def test_record_encodings(value: Value, raw: str) -> None:
    assert record(value) == h(raw)
    assert decode_values(h(raw)) == [value]


def test_negative_doubles() -> None:
    assert decode_values(h("82 FF FF FF FF FF FF FF FF")) == [-0.001]
    assert record(-268435456.5) == h("82 FF FF FF C1 7F FF FE 0C")
    assert decode_values(record(-268435456.5)) == [-268435456.5]
    # fixed point truncates toward zero, as Kamailio's (long long)(v*1000)
    assert decode_values(record(-0.0019)) == [-0.001]
    # only an 8-byte DOUBLE is signed: 4 bytes with the top bit set are a large positive value
    assert decode_values(h("42 FF FF FF FF")) == [4294967.295]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90 02 12 34", 0x1234),  # INT with its size in a length field
        ("A0 00 02 12 34", 0x1234),  # ... in a 2-byte length field
        ("40 00 00 12 34", 0x1234),  # leading zero bytes
        ("80", 0),  # length field of 0 bytes: empty value
        ("50 01 FF FF FF FF", -1),  # more than 4 bytes: Kamailio keeps the low 32 bits
        ('A1 00 04 "abc" 00', "abc"),  # short STR in the long form
        ("81", ""),  # STR with a 0-byte length field
        ("01", ""),  # STR of 0 bytes: no terminator to drop
        ("72 00 00 00 00 00 00 07", 0.007),  # DOUBLE with leading zero bytes
        ("86", b""),  # BYTES with a 0-byte length field
    ],
)
def test_non_minimal_input_is_accepted(raw: str, expected: Value) -> None:
    assert decode_values(h(raw)) == [expected]


def test_non_minimal_header_is_accepted() -> None:
    # 4-byte length and 4-byte cookie for a 2-byte body
    packet = read_one(h("A1 1F 00 00 00 02 00 00 00 07 10 05"))
    assert (packet.type, packet.cookie, packet.result()) == (PacketType.REPLY, 7, [5])


def test_undecodable_utf8_is_replaced() -> None:
    assert decode_values(h('31 "a" FF 00')) == ["a\ufffd"]
    assert decode_values(h('03 35 "n" FF 00 10 01 83 21 "b" 00')) == [Struct([("n\ufffd", 1)]), "b"]
    assert decode_values(record("zürich ☎")) == ["zürich ☎"]


def test_decode_values_takes_any_bytes_like_body() -> None:
    body = h('03 25 "a" 00 21 "b" 00 83')
    expected = [Struct([("a", "b")])]
    assert decode_values(bytearray(body)) == expected
    assert decode_values(memoryview(body)) == expected


def test_struct_keeps_order_repeated_names_and_unnamed_members() -> None:
    body = h('03 35 "ID" 00 10 01 45 "SET" 00 10 02 45 "SET" 00 10 03 21 "x" 00 83')
    (struct,) = decode_values(body)
    assert isinstance(struct, Struct)
    assert struct.members == [("ID", 1), ("SET", 2), ("SET", 3), (None, "x")]
    assert list(struct) == struct.members
    assert len(struct) == 4
    assert struct.get("SET") == 2
    assert struct.get("missing") is None
    assert struct.get("missing", 0) == 0
    assert struct.getall("SET") == [2, 3]
    assert struct.getall("missing") == []
    assert repr(struct) == "Struct([('ID', 1), ('SET', 2), ('SET', 3), (None, 'x')])"
    assert struct != Struct([("ID", 1)])
    assert struct != [("ID", 1), ("SET", 2), ("SET", 3), (None, "x")]


def test_struct_as_dict() -> None:
    assert Struct([("a", 1), ("b", "x")]).as_dict() == {"a": 1, "b": "x"}
    with pytest.raises(ValueError, match="repeats"):
        Struct([("a", 1), ("a", 2)]).as_dict()
    with pytest.raises(ValueError, match="unnamed"):
        Struct([("a", 1), (None, 2)]).as_dict()


def test_several_top_level_values() -> None:
    values: list[Value] = [1, "two", Struct([("n", 3)]), Struct([("n", 4)]), -5]
    assert read_one(encode_reply(values, 9)).result() == values


def test_request_packet_is_not_a_result() -> None:
    with pytest.raises(ProtocolError, match=r"got a request packet .* offset 1"):
        read_one(UPTIME_REQUEST).result()


@pytest.mark.parametrize("body", ["", '21 "x" 00', "10 01", '21 "x" 00 10 01', "10 01 10 02"])
def test_malformed_fault_body(body: str) -> None:
    packet = Packet(PacketType.FAULT, 1, h(body))
    with pytest.raises(ProtocolError, match="fault body is not an INT code and a STR message"):
        packet.result()


# ---------------------------------------------------------------------------------------------
# Encoder arguments


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: encode_request("m", [2**31]), ValueError, "32-bit"),
        (lambda: encode_request("m", [-(2**31) - 1]), ValueError, "32-bit"),
        (lambda: encode_request("m", [float("nan")]), ValueError, "fixed-point"),
        (lambda: encode_request("m", [float("inf")]), ValueError, "fixed-point"),
        (lambda: encode_request("m", [1e17]), ValueError, "64-bit"),
        (lambda: encode_request("m", [b"raw"]), TypeError, "bytes"),  # type: ignore[list-item]
        (lambda: encode_request("m", cookie=2**32), ValueError, "cookie"),
        (lambda: encode_request("m", cookie=-1), ValueError, "cookie"),
        (lambda: encode_reply([None], 0), TypeError, "None"),  # type: ignore[list-item]
        (lambda: encode_reply([{"a": 1}], 0), TypeError, "dict"),  # type: ignore[list-item]
        (lambda: encode_fault(2**40, "x", 0), ValueError, "32-bit"),
    ],
)
def test_encoder_rejects_what_binrpc_cannot_carry(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_encoder_rejects_nesting_the_decoder_refuses() -> None:
    value: Value = []
    for _ in range(MAX_NESTING - 1):
        value = [value]
    assert decode_values(record(value)) == [value]
    with pytest.raises(ValueError, match="nest deeper"):
        encode_reply([[value]], 0)


def test_new_cookie_is_a_random_32_bit_value() -> None:
    cookies = {new_cookie() for _ in range(64)}
    assert all(0 <= cookie <= 0xFFFFFFFF for cookie in cookies)
    assert len(cookies) > 1


# ---------------------------------------------------------------------------------------------
# PacketReader


def test_reader_splits_anywhere_and_reads_several_packets_per_feed() -> None:
    stream = UPTIME_REQUEST + UPTIME_REPLY + h("A1 11 00 12 34") + UNKNOWN_COMMAND_FAULT
    for split in range(len(stream) + 1):
        reader = PacketReader()
        reader.feed(stream[:split])
        packets = []
        while (packet := reader.next_packet()) is not None:
            packets.append(packet)
        reader.feed(stream[split:])
        while (packet := reader.next_packet()) is not None:
            packets.append(packet)
        assert [p.type for p in packets] == [
            PacketType.REQUEST,
            PacketType.REPLY,
            PacketType.REPLY,
            PacketType.FAULT,
        ]
        assert packets[1].values() == [UPTIME_VALUE]
        assert reader.buffered == 0


def test_reader_waits_for_whole_header_and_body() -> None:
    reader = PacketReader()
    assert reader.next_packet() is None
    for byte in UPTIME_REPLY[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_packet() is None
    assert reader.buffered == len(UPTIME_REPLY) - 1
    reader.feed(UPTIME_REPLY[-1:] + b"\xa1")
    packet = reader.next_packet()
    assert packet is not None
    assert packet.cookie == 0x12345678
    assert reader.buffered == 1


def test_default_max_packet_size() -> None:
    assert DEFAULT_MAX_PACKET_SIZE == 1 << 20
    reader = PacketReader()
    reader.feed(h("A1 18 10 00 00 00"))  # 0x100000 body bytes + 6 header bytes
    with pytest.raises(ProtocolError, match="exceeds the limit of 1048576 bytes"):
        reader.next_packet()
    reader = PacketReader()
    reader.feed(h("A1 18 0F FF FA 00") + bytes(0xFFFFA))  # exactly 1 MiB with its header
    packet = reader.next_packet()
    assert packet is not None
    assert len(packet.body) == 0xFFFFA


@pytest.mark.parametrize(
    ("raw", "max_size", "match", "offset"),
    [
        ("41", None, "bad magic byte 0x41 \\(expected 0xA1\\) at offset 0", 0),
        ("A2 10 00 00", None, "bad magic byte 0xA2", 0),
        ("A1 20 00 00", None, "bad packet type 2 at offset 1", 1),
        ("A1 40", None, "bad packet type 4 at offset 1", 1),
        ("A1 F0", None, "bad packet type 15 at offset 1", 1),
        # the length alone condemns the packet: no body byte was sent
        ("A1 1F FF FF FF FF 00 00 00 01", None, "packet of 4294967305 bytes exceeds", 2),
        ("A1 10 7B 01", 126, "packet of 127 bytes exceeds the limit of 126 bytes", 2),
    ],
)
def test_reader_rejects_bad_headers(
    raw: str, max_size: int | None, match: str, offset: int
) -> None:
    reader = PacketReader() if max_size is None else PacketReader(max_packet_size=max_size)
    reader.feed(h(raw))
    with pytest.raises(ProtocolError, match=match) as caught:
        reader.next_packet()
    assert caught.value.offset == offset
    assert isinstance(caught.value, BinRpcError)


def test_reader_accepts_packet_of_exactly_max_size() -> None:
    reader = PacketReader(max_packet_size=len(UPTIME_REPLY))
    reader.feed(UPTIME_REPLY)
    assert reader.next_packet() is not None


# ---------------------------------------------------------------------------------------------
# Bad bodies: each kind of error with its offset


@pytest.mark.parametrize(
    ("body", "match", "offset"),
    [
        ("07", "unknown record type 7 \\(byte 0x07\\)", 0),
        ("10 01 FF", "unknown record type 15 \\(byte 0xFF\\)", 2),
        ('91 0A "abc"', "STR of 10 bytes overruns the body", 0),
        ("10", "INT of 1 bytes overruns the body", 0),
        ("30 01", "INT of 3 bytes overruns the body", 0),
        ("A1 01", "length field of 2 bytes overruns the body", 0),
        ('66 "abc"', "BYTES of 6 bytes overruns the body", 0),
        ("32 01", "DOUBLE of 3 bytes overruns the body", 0),
        ("92 00 00 00 00 00 00 00 00 00", "DOUBLE of 9 bytes \\(at most 8\\)", 0),
        ("F2", "DOUBLE of 15 bytes \\(at most 8\\)", 0),
        ('45 "abc" 00 10 01', "member name \\(AVP\\) outside a struct", 0),
        ('04 25 "a" 00 10 01 84', "member name \\(AVP\\) outside a struct", 1),
        ('03 25 "a" 00 25 "b" 00 10 01 83', "AVP followed by another AVP", 4),
        ('03 25 "a" 00 83', "AVP without a value before an end tag", 4),
        ('03 25 "a" 00', "truncated record", 1),  # the AVP ends the body
        ('03 95 09 "abc"', "truncated record", 1),  # the AVP overruns the body
        ("03 95", "truncated record", 1),
        ('03 25 "a" 00 91', "truncated record", 4),
        ('03 25 "a" 00 91 05 "ab"', "STR overruns the body", 4),
        ('03 25 "a" 00 41 "ab"', "STR overruns the body", 4),
        ('03 25 "a" 00 10', "truncated record", 4),
        ('03 25 "a" 00 30 01', "INT overruns the body", 4),
        ('03 25 "a" 00 32 01', "DOUBLE overruns the body", 4),
        ("83", "end tag 0x83 with nothing open", 0),
        ("10 01 84", "end tag 0x84 with nothing open", 2),
        ("03 84", "end tag 0x84 closes the STRUCT opened at body offset 0", 1),
        ("03 04 83", "end tag 0x83 closes the ARRAY opened at body offset 1", 2),
        ("13 00", "bad STRUCT tag 0x13", 0),
        ("93 00", "bad STRUCT tag 0x93", 0),
        ("14", "bad ARRAY tag 0x14", 0),
        ('03 25 "a" 00 10 01', "STRUCT opened at body offset 0 is not closed", 6),
        ("04 03 83", "ARRAY opened at body offset 0 is not closed", 3),
        ("03" * (MAX_NESTING + 1), f"containers nest deeper than {MAX_NESTING}", MAX_NESTING),
    ],
)
def test_bad_body(body: str, match: str, offset: int) -> None:
    with pytest.raises(ProtocolError, match=f"{match} at body offset {offset}$") as caught:
        decode_values(h(body))
    assert caught.value.offset == offset


def test_bad_body_in_a_packet() -> None:
    packet = read_one(h("A1 10 02 01 03 84"))
    with pytest.raises(ProtocolError, match=r"closes the STRUCT .* at body offset 1$"):
        packet.values()
    with pytest.raises(ProtocolError):
        packet.result()


def test_huge_length_fields_allocate_nothing() -> None:
    # 7-byte length fields claiming petabytes: rejected from the bytes at hand
    for body in (
        "F1 FF FF FF FF FF FF FF",
        "F6 FF FF FF FF FF FF FF",
        "03 F5 FF FF FF FF FF FF FF",
    ):
        with pytest.raises(ProtocolError, match=r"overruns the body|truncated record"):
            decode_values(h(body))


def test_deep_nesting_in_a_large_body_is_refused_without_recursion() -> None:
    with pytest.raises(ProtocolError, match="nest deeper"):
        decode_values(b"\x04" * 500_000)
    with pytest.raises(ProtocolError, match="nest deeper"):
        decode_values(b"\x03" * 50 + b"\x04" * 500_000)
