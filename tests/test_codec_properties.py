"""Properties of the codec: encode then decode is the identity, and no input whatsoever (random
bytes, damaged captures) gets anything out of the decoder but values or a ProtocolError."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe_exporter.binrpc.codec import (
    Fault,
    Packet,
    PacketReader,
    ProtocolError,
    Struct,
    Value,
    decode_values,
    encode_reply,
    encode_request,
)

CAPTURES = sorted((Path(__file__).parent / "fixtures" / "captures").glob("*.bin"))
CAPTURED = [path.read_bytes() for path in CAPTURES]

FEW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

int32s = st.integers(-(2**31), 2**31 - 1)
# floats that survive the x1000 fixed point: k/1000 whose truncated product gives k back
doubles = (
    st.integers(-(2**53), 2**53).map(lambda k: k / 1000).filter(lambda x: int(x * 1000) / 1000 == x)
)
cookies = st.integers(0, 2**32 - 1)
scalars = st.one_of(int32s, doubles, st.text(), st.binary())


def containers(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    members = st.lists(st.tuples(st.none() | st.text(max_size=20), children), max_size=6)
    return st.one_of(members.map(Struct), st.lists(children, max_size=6))


values = st.recursive(scalars, containers, max_leaves=40)


def same(decoded: object, original: object) -> bool:
    """Equal with equal types all the way down (5 == 5.0 would hide a wrong record type)."""
    return decoded == original and repr(decoded) == repr(original)


def read_all(data: bytes) -> list[Packet]:
    reader = PacketReader()
    reader.feed(data)
    packets = []
    while (packet := reader.next_packet()) is not None:
        packets.append(packet)
    return packets


def protocol_error_of(action: Callable[[], object]) -> ProtocolError | None:
    try:
        action()
    except ProtocolError as error:
        return error
    return None


def read_everything(data: bytes, max_packet_size: int) -> None:
    reader = PacketReader(max_packet_size=max_packet_size)
    reader.feed(data)
    while (packet := reader.next_packet()) is not None:
        packet.values()
        with contextlib.suppress(Fault):
            packet.result()


def decode_everything(data: bytes, max_packet_size: int = 1 << 20) -> None:
    """Runs the whole decoding path; only values, None, ProtocolError or Fault may come out."""
    error = protocol_error_of(lambda: read_everything(data, max_packet_size))
    if error is not None:
        assert " offset " in str(error)


@FEW
@given(st.lists(values, max_size=5), cookies)
def test_reply_round_trip(original: list[Value], cookie: int) -> None:
    (packet,) = read_all(encode_reply(original, cookie))
    assert packet.cookie == cookie
    assert same(packet.result(), original)


@FEW
@given(st.text(), st.lists(st.one_of(int32s, doubles, st.text()), max_size=8), cookies)
def test_request_round_trip(method: str, params: list[int | float | str], cookie: int) -> None:
    (packet,) = read_all(encode_request(method, params, cookie))
    assert packet.cookie == cookie
    assert same(packet.values(), [method, *params])


@FEW
@given(st.lists(values, min_size=1, max_size=3), st.data())
def test_reader_splits_anywhere(original: list[Value], data: st.DataObject) -> None:
    stream = b"".join(encode_reply([value], n) for n, value in enumerate(original))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = PacketReader()
    packets = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[start:stop])
        while (packet := reader.next_packet()) is not None:
            packets.append(packet)
    assert [p.cookie for p in packets] == list(range(len(original)))
    assert same([p.values() for p in packets], [[value] for value in original])


@MANY
@given(st.binary(max_size=300))
def test_random_bodies(body: bytes) -> None:
    error = protocol_error_of(lambda: decode_values(body))
    if error is not None:
        assert error.offset is not None
        assert 0 <= error.offset <= len(body)
        assert f"at body offset {error.offset}" in str(error)


@MANY
@given(st.binary(max_size=300))
def test_random_packets(data: bytes) -> None:
    decode_everything(b"\xa1" + data)
    decode_everything(data, max_packet_size=64)


captures = st.sampled_from(CAPTURED)


@MANY
@given(captures, st.data())
def test_bit_flips(captured: bytes, data: st.DataObject) -> None:
    damaged = bytearray(captured)
    for position in data.draw(st.lists(st.integers(0, len(captured) - 1), min_size=1, max_size=4)):
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    decode_everything(bytes(damaged))
    decode_everything(bytes(damaged[8:]))  # the flips as seen by a packet boundary elsewhere


@FEW
@given(captures, st.data())
def test_truncation_and_insertion(captured: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(captured)))
    decode_everything(captured[:cut])
    header_size = 2 + ((captured[1] >> 2) & 3) + 1 + (captured[1] & 3) + 1
    with contextlib.suppress(ProtocolError):
        decode_values(captured[header_size:cut])
    position = data.draw(st.integers(0, len(captured)))
    inserted = data.draw(st.binary(min_size=1, max_size=8))
    decode_everything(captured[:position] + inserted + captured[position:])


@MANY
@given(captures, st.data())
def test_corrupted_length_fields(captured: bytes, data: st.DataObject) -> None:
    """Rewrites the packet length, or the byte after one with bit 7 set (mostly S-flag type bytes,
    so a record length)."""
    damaged = bytearray(captured)
    len_size = ((captured[1] >> 2) & 3) + 1
    if data.draw(st.booleans()):
        new_length = data.draw(st.integers(0, 256**len_size - 1))
        damaged[2 : 2 + len_size] = new_length.to_bytes(len_size)
    else:
        type_bytes = [i for i in range(len(captured) - 1) if captured[i] & 0x80]
        position = data.draw(st.sampled_from(type_bytes)) + 1
        damaged[position] = data.draw(st.integers(0, 255))
    decode_everything(bytes(damaged))


def test_requests_equal_as_values_encode_their_own_types() -> None:
    # 0 and 0.0 are equal (one key to a cache) but are INT and DOUBLE on the wire
    for params in ([0], [0.0], ["0"], [1.0], [1], [0]):
        (packet,) = read_all(encode_request("m", params, 1))
        assert same(packet.values(), ["m", *params])
