"""Kamailio BINRPC codec, sans-IO: bytes in, values out.

Wire format (Kamailio's ctl module, ``binrpc.h``): a packet is a header (magic ``0xA1``, type,
minimal big-endian body length and cookie) followed by a body of records. A record starts with
one byte: bit 7 = S flag, bits 6-4 = size, bits 3-0 = type. With S clear, size is the value's
byte count; with S set, size is the byte count of a big-endian length that follows. DOUBLE is the
exception: its whole high nibble is the value's byte count (0-8).

One module of ~590 lines on purpose: encoding, the incremental packet reader and the record
decoder share the record layout and its limits, and mypyc compiles the module as a unit.
"""

from __future__ import annotations

import enum
import functools
import math
import random
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import (
    BinRpcError,
    Fault,
    LimitExceeded,
    PacketTooLarge,
    ProtocolError,
    TooManyRecords,
)

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "INT32_MAX",
    "INT32_MIN",
    "MAX_NESTING",
    "SLICE_RECORDS",
    "BinRpcError",
    "Fault",
    "LimitExceeded",
    "Packet",
    "PacketReader",
    "PacketTooLarge",
    "PacketType",
    "Param",
    "ProtocolError",
    "Reply",
    "Struct",
    "TooManyRecords",
    "Value",
    "decode_slices",
    "decode_values",
    "encode_fault",
    "encode_reply",
    "encode_request",
    "new_cookie",
]

DEFAULT_MAX_PACKET_SIZE: Final = 1 << 20
# Kamailio sets no limit; its deepest replies (dispatcher.list) nest 6 levels. A cap keeps hostile
# input from building objects too deep for recursive consumers (repr, ==, collectors).
MAX_NESTING: Final = 100
# Records decoded between two pauses of decode_slices: a few milliseconds of work at most.
SLICE_RECORDS: Final = 2048

MAGIC: Final = 0xA1
MAX_FAULT_LEN: Final = 255  # Kamailio formats fault messages into a 256-byte buffer, NUL included

# Record types (low nibble of the record's first byte).
T_INT: Final = 0
T_STR: Final = 1
T_DOUBLE: Final = 2
T_STRUCT: Final = 3
T_ARRAY: Final = 4
T_AVP: Final = 5
T_BYTES: Final = 6
S_FLAG: Final = 0x80
STRUCT_END: Final = S_FLAG | T_STRUCT
ARRAY_END: Final = S_FLAG | T_ARRAY

INT32_MIN: Final = -(1 << 31)
INT32_MAX: Final = (1 << 31) - 1
INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1


class Struct:
    """A BINRPC struct: ordered members whose names are optional and may repeat."""

    __slots__ = ("members",)
    members: list[tuple[str | None, Value]]

    def __init__(self, members: Iterable[tuple[str | None, Value]] = ()) -> None:
        self.members = list(members)

    def get(self, name: str, default: Value | None = None) -> Value | None:
        """The value of the first member called `name`, else `default`."""
        for member_name, value in self.members:
            if member_name == name:
                return value
        return default

    def getall(self, name: str) -> list[Value]:
        """The values of every member called `name`, in order."""
        return [value for member_name, value in self.members if member_name == name]

    def as_dict(self) -> dict[str, Value]:
        """Members by name; ValueError when a member is unnamed or a name repeats."""
        result: dict[str, Value] = {}
        for member_name, value in self.members:
            if member_name is None:
                raise ValueError("struct has an unnamed member")
            if member_name in result:
                raise ValueError(f"struct member name {member_name!r} repeats")
            result[member_name] = value
        return result

    def __iter__(self) -> Iterator[tuple[str | None, Value]]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Struct):
            return self.members == other.members
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        return f"Struct({self.members!r})"


Param: TypeAlias = int | str | float
Value: TypeAlias = int | float | str | bytes | Struct | list["Value"]


# One call's outcome in a batch: its top-level values, or the FAULT it got.
Reply: TypeAlias = list[Value] | Fault


class PacketType(enum.IntEnum):
    REQUEST = 0
    REPLY = 1
    FAULT = 3


@dataclass(frozen=True, slots=True, init=False)
class Packet:
    type: PacketType
    cookie: int
    body: bytes

    # Written out, not generated: compiled (mypyc), a dataclass's generated __init__ stays
    # interpreted, and every reply is a Packet.
    def __init__(self, type: PacketType, cookie: int, body: bytes) -> None:
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "cookie", cookie)
        object.__setattr__(self, "body", body)

    def values(self) -> list[Value]:
        """The body's top-level values; ProtocolError on bad bytes."""
        return decode_values(self.body)

    def result(self) -> list[Value]:
        """The values of a REPLY; raises Fault for a FAULT, ProtocolError for a REQUEST."""
        reply = self.reply(decode_values(self.body))
        if isinstance(reply, Fault):
            raise reply
        return reply

    def reply(self, values: list[Value]) -> Reply:
        """What `values`, this packet's decoded body, answer: themselves for a REPLY, the
        Fault for a FAULT; ProtocolError for a REQUEST."""
        if self.type == PacketType.REPLY:
            return values
        if self.type == PacketType.FAULT:
            return _fault_of(values)
        raise ProtocolError("expected a reply, got a request packet (type at offset 1)", 1)


def _fault_of(values: list[Value]) -> Fault:
    # Kamailio's fault body is INT code then STR message; kamcmd ignores anything after them.
    if len(values) < 2 or type(values[0]) is not int or type(values[1]) is not str:
        shape = ", ".join(type(value).__name__ for value in values)
        raise _body_error(f"fault body is not an INT code and a STR message but ({shape})", 0)
    return Fault(values[0], values[1])


# --------------------------------------------------------------------------------------------
# Encoding


def _minimal_size(value: int) -> int:
    """Bytes of the minimal big-endian form of a non-negative int (0 for 0)."""
    return (value.bit_length() + 7) >> 3


def _header(packet_type: PacketType, body_len: int, cookie: int) -> bytes:
    if not 0 <= cookie <= 0xFFFFFFFF:
        raise ValueError(f"cookie {cookie} is not an unsigned 32-bit value")
    if body_len > 0xFFFFFFFF:
        raise ValueError(f"body of {body_len} bytes does not fit a BINRPC packet")
    len_size = _minimal_size(body_len) or 1
    cookie_size = _minimal_size(cookie) or 1
    return (
        bytes((MAGIC, (packet_type << 4) | ((len_size - 1) << 2) | (cookie_size - 1)))
        + body_len.to_bytes(len_size)
        + cookie.to_bytes(cookie_size)
    )


def _sized_record(record_type: int, raw: bytes) -> bytes:
    """STR, AVP and BYTES: the size inline when it fits 3 bits, else a minimal length field."""
    size = len(raw)
    if size < 8:
        return bytes(((size << 4) | record_type,)) + raw
    len_size = _minimal_size(size)
    if len_size > 4:
        raise ValueError(f"record of {size} bytes does not fit a BINRPC length")
    return bytes((S_FLAG | (len_size << 4) | record_type,)) + size.to_bytes(len_size) + raw


def _int_record(value: int) -> bytes:
    if not INT32_MIN <= value <= INT32_MAX:
        raise ValueError(f"INT {value} is outside the signed 32-bit range")
    pattern = value & 0xFFFFFFFF  # negative numbers take all 4 bytes, as in Kamailio
    size = _minimal_size(pattern)
    return bytes(((size << 4) | T_INT,)) + pattern.to_bytes(size)


def _double_record(value: float) -> bytes:
    if not math.isfinite(value):
        raise ValueError(f"DOUBLE {value} has no fixed-point form")
    fixed = int(value * 1000)  # truncates toward zero like Kamailio's (long long)(v*1000)
    if not INT64_MIN <= fixed <= INT64_MAX:
        raise ValueError(f"DOUBLE {value} is outside the 64-bit fixed-point range")
    pattern = fixed & 0xFFFFFFFFFFFFFFFF
    size = _minimal_size(pattern)
    return bytes(((size << 4) | T_DOUBLE,)) + pattern.to_bytes(size)


def _str_record(value: str, record_type: int = T_STR) -> bytes:
    return _sized_record(record_type, value.encode() + b"\x00")


def _param_record(param: Param) -> bytes:
    if isinstance(param, int):
        return _int_record(param)
    if isinstance(param, str):
        return _str_record(param)
    if isinstance(param, float):
        return _double_record(param)
    raise TypeError(f"a BINRPC parameter is an int, str or float, not {type(param).__name__}")


def _encode_value(out: bytearray, value: Value, depth: int) -> None:
    if isinstance(value, int):
        out += _int_record(value)
    elif isinstance(value, str):
        out += _str_record(value)
    elif isinstance(value, float):
        out += _double_record(value)
    elif isinstance(value, bytes | bytearray):
        out += _sized_record(T_BYTES, bytes(value))
    elif isinstance(value, Struct | list):
        if depth >= MAX_NESTING:
            raise ValueError(f"values nest deeper than {MAX_NESTING} levels")
        if isinstance(value, Struct):
            out.append(T_STRUCT)
            for name, member in value.members:
                if name is not None:
                    out += _str_record(name, T_AVP)
                _encode_value(out, member, depth + 1)
            out.append(STRUCT_END)
        else:
            out.append(T_ARRAY)
            for item in value:
                _encode_value(out, item, depth + 1)
            out.append(ARRAY_END)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as a BINRPC value")


def encode_request(method: str, params: Sequence[Param] = (), cookie: int = 0) -> bytes:
    """A request packet: the method as STR, then each parameter as INT, STR or DOUBLE."""
    values = tuple(params)
    cached = all(type(param) is str for param in values)
    body = (_cached_request_body if cached else _request_body)(method, values)
    return _header(PacketType.REQUEST, len(body), cookie) + body


def _request_body(method: str, params: tuple[Param, ...]) -> bytes:
    return b"".join([_str_record(method), *map(_param_record, params)])


# A probe sends the same requests every time: only the cookie in their header changes. Only
# text parameters are cached: 0, 0.0 and False are one key to a cache, but not one request.
_cached_request_body: Final = functools.lru_cache(maxsize=1024)(_request_body)


def encode_reply(values: Sequence[Value], cookie: int) -> bytes:
    """A reply packet as Kamailio writes it (lists become ARRAY, bytes become BYTES)."""
    body = bytearray()
    for value in values:
        _encode_value(body, value, 0)
    return _header(PacketType.REPLY, len(body), cookie) + body


def encode_fault(code: int, message: str, cookie: int) -> bytes:
    """A fault packet; like Kamailio, the message is cut to 255 bytes."""
    raw = message.encode()[:MAX_FAULT_LEN] + b"\x00"
    body = _int_record(code) + _sized_record(T_STR, raw)
    return _header(PacketType.FAULT, len(body), cookie) + body


def new_cookie() -> int:
    """A random 32-bit cookie (a safeguard against desynchronised replies, not a secret)."""
    return random.getrandbits(32)


# --------------------------------------------------------------------------------------------
# Decoding


def _body_error(what: str, offset: int) -> ProtocolError:
    return ProtocolError(f"{what} at body offset {offset}", offset)


_TYPE_NAMES: Final = ("INT", "STR", "DOUBLE", "STRUCT", "ARRAY", "AVP", "BYTES")


def _text(raw: bytes, strict: bool) -> str:
    # Compiled, both decodes are direct C calls; a decode function passed in would not be.
    return raw.decode() if strict else raw.decode("utf-8", "replace")


def _uint(data: bytes, start: int, stop: int) -> int:
    """The big-endian unsigned int in data[start:stop]: compiled, a loop of inline operations,
    where int.from_bytes is a generic call. IndexError when the body ends before `stop`."""
    value = 0
    for index in range(start, stop):
        value = (value << 8) | data[index]
    return value


def decode_values(body: bytes | bytearray | memoryview) -> list[Value]:
    """Decode a packet body into its top-level values.

    Structs become `Struct` (order, unnamed members and repeated names kept), ARRAY a list,
    STR a str without its NUL terminator (UTF-8, undecodable bytes replaced), INT a signed
    32-bit int, DOUBLE a float (fixed point / 1000), BYTES bytes. Any malformed input raises
    ProtocolError naming the problem and its offset in the body.
    """
    slices = decode_slices(body)
    while True:
        try:
            next(slices)
        except StopIteration as done:
            values: list[Value] = done.value[0]
            return values


def decode_slices(
    body: bytes | bytearray | memoryview, max_records: int | None = None
) -> Generator[None, None, tuple[list[Value], int]]:
    """decode_values in slices: pauses (yields) after every SLICE_RECORDS records, so that a
    caller can let other work run between slices, and returns the values with the number of
    records decoded. More than `max_records` records raise LimitExceeded: a record can be two
    bytes on the wire (an empty ARRAY) and a hundred in memory."""
    data = body if type(body) is bytes else bytes(body)
    limit = len(data) if max_records is None else max_records  # never more records than bytes
    try:
        # strict UTF-8 is the fast case; the rare undecodable body is decoded again
        return (yield from _decode(data, True, limit))
    except UnicodeDecodeError:
        return (yield from _decode(data, False, limit))


def _decode(
    data: bytes, strict: bool, limit: int
) -> Generator[None, None, tuple[list[Value], int]]:
    """One pass over `data`, no recursion: open containers live on an explicit stack.
    Pauses every SLICE_RECORDS records; raises LimitExceeded past `limit` records.

    The hot path, a member name (AVP) followed by a STR or a small INT as in every stats
    reply, is inlined and uses literal type bytes. A STR of 0 bytes has no terminator to drop:
    `q > p` guards each `data[p : q - 1]`. `pos` stays on the first byte of the
    current record until that record is consumed, so an IndexError from a one-byte read is a
    record truncated at `pos`; every slice end is checked against `end`.
    """
    end = len(data)
    top: list[Value] = []
    items: list[Any] = top  # the open container's list: struct members or plain values
    in_struct = False
    # enclosing containers: (their items, in_struct, type of the one opened, its offset)
    stack: list[tuple[list[Any], bool, int, int]] = []
    name: str | None = None
    value: Value
    pos = 0
    records = 0
    pause = min(SLICE_RECORDS, limit)
    try:
        while pos < end:
            records += 1
            if records > pause:
                if records > limit:
                    raise TooManyRecords(
                        f"more than {limit} records in a body of {end} bytes", records, limit
                    )
                pause = min(pause + SLICE_RECORDS, limit)
                yield
            t = data[pos]
            if t & 0x0F == 5:  # AVP: a member name, then the member's value record
                if not in_struct:
                    raise _body_error("member name (AVP) outside a struct", pos)
                if t == 0x95:  # 1-byte length
                    p = pos + 2
                    q = p + data[pos + 1]
                elif t < 0x80:  # size inline
                    p = pos + 1
                    q = p + (t >> 4)
                else:
                    p = pos + 1 + ((t >> 4) & 7)
                    q = p + _uint(data, pos + 1, p)
                name = _text(data[p : q - 1], strict) if q > p else ""
                t = data[q]  # the value's type byte; IndexError when the AVP ends the body
                pos = q
                if t == 0x91:  # STR with a 1-byte length
                    p = pos + 2
                    q = p + data[pos + 1]
                    if q > end:
                        raise _body_error("STR overruns the body", pos)
                    items.append((name, _text(data[p : q - 1], strict) if q > p else ""))
                    pos = q
                    continue
                if t & 0x8F == 0x01:  # STR with its size inline
                    p = pos + 1
                    q = p + (t >> 4)
                    if q > end:
                        raise _body_error("STR overruns the body", pos)
                    items.append((name, _text(data[p : q - 1], strict) if q > p else ""))
                    pos = q
                    continue
                if t & 0x8F == 0x00:  # INT with its size inline
                    if t == 0x10:
                        q = pos + 2
                        number = data[pos + 1]
                    else:
                        q = pos + 1 + (t >> 4)
                        if q > end:
                            raise _body_error("INT overruns the body", pos)
                        number = _uint(data, pos + 1, q)
                        if number > 0x7FFFFFFF:  # signed 32-bit, low 32 bits as Kamailio reads
                            number &= 0xFFFFFFFF
                            if number > 0x7FFFFFFF:
                                number -= 1 << 32
                    items.append((name, number))
                    pos = q
                    continue
                if t & 0x0F == 2 and t < 0x80:  # DOUBLE of 0-7 bytes, unsigned
                    q = pos + 1 + (t >> 4)
                    if q > end:
                        raise _body_error("DOUBLE overruns the body", pos)
                    items.append((name, _uint(data, pos + 1, q) / 1000))
                    pos = q
                    continue
                # any other value: the general path below, named by `name`
            else:
                name = None
            typ = t & 0x0F
            if typ == T_DOUBLE:  # no S flag: the whole high nibble is the byte count
                n = t >> 4
                if n > 8:
                    raise _body_error(f"DOUBLE of {n} bytes (at most 8)", pos)
                q = pos + 1 + n
                if q > end:
                    raise _body_error(f"DOUBLE of {n} bytes overruns the body", pos)
                fixed = _uint(data, pos + 1, q)
                if n == 8 and fixed > INT64_MAX:
                    fixed -= 1 << 64
                value = fixed / 1000
            elif typ in (T_STRUCT, T_ARRAY):
                if t == typ:  # start
                    if len(stack) >= MAX_NESTING:
                        raise _body_error(f"containers nest deeper than {MAX_NESTING}", pos)
                    new_items: list[Any] = []
                    if typ == T_STRUCT:
                        struct = Struct()
                        struct.members = new_items
                        value = struct
                    else:
                        value = new_items
                    items.append((name, value) if in_struct else value)
                    stack.append((items, in_struct, typ, pos))
                    items = new_items
                    in_struct = typ == T_STRUCT
                    pos += 1
                    continue
                if t != typ | S_FLAG:
                    raise _body_error(f"bad {_TYPE_NAMES[typ]} tag 0x{t:02X}", pos)
                if name is not None:
                    raise _body_error("AVP without a value before an end tag", pos)
                if not stack:
                    raise _body_error(f"end tag 0x{t:02X} with nothing open", pos)
                items, in_struct, open_type, start = stack.pop()
                if open_type != typ:
                    raise _body_error(
                        f"end tag 0x{t:02X} closes the {_TYPE_NAMES[open_type]} "
                        f"opened at body offset {start}",
                        pos,
                    )
                pos += 1
                continue
            elif typ == T_AVP:
                raise _body_error("AVP followed by another AVP", pos)
            elif typ <= T_BYTES:  # INT, STR, BYTES
                if t & S_FLAG:  # a big-endian length of `size` bytes follows
                    size = (t >> 4) & 7
                    p = pos + 1 + size
                    if p > end:
                        raise _body_error(f"length field of {size} bytes overruns the body", pos)
                    n = _uint(data, pos + 1, p)
                else:
                    p = pos + 1
                    n = t >> 4
                q = p + n
                if q > end:
                    raise _body_error(f"{_TYPE_NAMES[typ]} of {n} bytes overruns the body", pos)
                if typ == T_STR:
                    # the last byte is the NUL terminator; a reversed slice, empty in Python, is
                    # an error compiled (mypyc), hence the test
                    value = _text(data[p : q - 1], strict) if q > p else ""
                elif typ == T_INT:
                    value = _uint(data, p, q) & 0xFFFFFFFF  # Kamailio keeps the low 32 bits
                    if value > INT32_MAX:
                        value -= 1 << 32
                else:
                    value = data[p:q]
            else:
                raise _body_error(f"unknown record type {typ} (byte 0x{t:02X})", pos)
            items.append((name, value) if in_struct else value)
            pos = q
    except IndexError:
        raise _body_error("truncated record", pos) from None
    if stack:
        _, _, open_type, start = stack[-1]
        raise _body_error(
            f"{_TYPE_NAMES[open_type]} opened at body offset {start} is not closed", end
        )
    return top, records


_PACKET_TYPES: Final[tuple[PacketType | None, ...]] = (
    PacketType.REQUEST,
    PacketType.REPLY,
    None,
    PacketType.FAULT,
)


class PacketReader:
    """Splits a byte stream into packets: any split, several packets per feed.

    A bad header raises ProtocolError, a length beyond `max_packet_size` (header included)
    LimitExceeded, as soon as the header is complete, whatever the length field claims; offsets
    in header errors count from the start of the packet.
    """

    __slots__ = ("_buffer", "max_packet_size")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self._buffer = bytearray()
        self.max_packet_size = max_packet_size  # may change between packets

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def peek(self, size: int) -> bytes:
        """The first `size` bytes not yet read as a packet (fewer if fewer came)."""
        return bytes(self._buffer[:size])

    def next_packet(self) -> Packet | None:
        """The next complete packet, or None when more bytes are needed."""
        buffer = self._buffer
        size = len(buffer)
        if not size:
            return None
        if buffer[0] != MAGIC:
            raise ProtocolError(f"bad magic byte 0x{buffer[0]:02X} (expected 0xA1) at offset 0", 0)
        if size < 2:
            return None
        flags = buffer[1]
        packet_type = _PACKET_TYPES[flags >> 4] if flags >> 4 < 4 else None
        if packet_type is None:
            raise ProtocolError(f"bad packet type {flags >> 4} at offset 1", 1)
        len_end = 3 + ((flags >> 2) & 3)
        header_size = len_end + 1 + (flags & 3)
        if size < header_size:
            return None
        total = header_size + int.from_bytes(buffer[2:len_end])
        if total > self.max_packet_size:
            raise PacketTooLarge(
                f"packet of {total} bytes exceeds the limit of {self.max_packet_size} bytes"
                " (length field at offset 2)",
                total,
                self.max_packet_size,
                2,
            )
        if size < total:
            return None
        cookie = int.from_bytes(buffer[len_end:header_size])
        body = bytes(buffer[header_size:total])
        del buffer[:total]
        return Packet(packet_type, cookie, body)
