"""A BINRPC server that misbehaves the ways a real Kamailio cannot be made to, for fault tests.

Each Behaviour is one way of mistreating a client. HostileServer runs any number of listeners
(TCP on 127.0.0.1, or unix stream sockets in a temporary directory) on its own event loop in a
background thread, so that both plain and async tests can use it while an exporter runs in
another process. It counts connections accepted and still open per listener: a client that
discards a broken connection shows up as `open == 0`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import socket
import struct
import threading
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from probe_exporter.binrpc.codec import (
    Fault,
    Packet,
    PacketReader,
    PacketType,
    ProtocolError,
    Value,
    encode_fault,
    encode_reply,
)

T = TypeVar("T")

# How long a misbehaving connection may stay open: far beyond any probe deadline in the tests,
# and still bounded.
HANG_LIMIT = 30.0
DRIBBLE_INTERVAL = 0.1


class Behaviour(enum.Enum):
    """What the server does with a connection."""

    HEALTHY = "healthy"  # answers system.listMethods with no methods, anything else with a FAULT
    SCRIPTED = "scripted"  # answers the methods of its `replies` with them, others with a FAULT
    SILENT = "silent"  # accepts, reads, never answers
    HALF_REPLY = "half-reply"  # the first half of a reply, then nothing
    CLOSE_MID_REPLY = "close-mid-reply"  # the first half of a reply, then closes
    GARBAGE = "garbage"  # bytes that are not BINRPC
    HUGE_LENGTH = "huge-length"  # a reply header announcing a 2 GiB body
    WRONG_COOKIE = "wrong-cookie"  # a well-formed reply with another cookie
    DRIBBLE = "dribble"  # a correct reply, one byte per 100 ms
    RESET = "reset"  # accepts and resets at once (linger 0), as past Kamailio's 128 connections
    EOF_AT_ONCE = "eof-at-once"  # accepts and closes at once (Kamailio's other answer past 128)


# The failure stages a probe may report for each misbehaviour. A connection reset or closed
# right after the handshake fails at connect or at the first read, depending on which comes
# first; Kamailio's 129th connection does either.
EXPECTED_STAGES = {
    Behaviour.SILENT: ("timeout",),
    Behaviour.HALF_REPLY: ("timeout",),
    Behaviour.CLOSE_MID_REPLY: ("rpc",),
    Behaviour.GARBAGE: ("decode",),
    Behaviour.HUGE_LENGTH: ("limit",),
    Behaviour.WRONG_COOKIE: ("decode",),
    Behaviour.DRIBBLE: ("timeout",),
    Behaviour.RESET: ("rpc", "connect"),
    Behaviour.EOF_AT_ONCE: ("rpc", "connect"),
}


@dataclass
class Listener:
    behaviour: Behaviour
    address: str  # in Kamailio's syntax: tcp:127.0.0.1:PORT or unix:/PATH
    server: asyncio.Server
    path: Path | None = None
    # SCRIPTED: method -> its answer (system.listMethods lists the methods); see Answer
    replies: Mapping[str, Answer] = field(default_factory=dict)
    accepted: int = 0
    open: int = 0
    writers: set[asyncio.StreamWriter] = field(default_factory=set)


def _first_request(reader: PacketReader, data: bytes) -> Packet | None:
    reader.feed(data)
    try:
        return reader.next_packet()
    except ProtocolError:
        return None


# A SCRIPTED answer: the values of a reply, a reply body encoded beforehand (reply_body(): big
# replies are encoded once, not for every request), or a FAULT. Keys are a method, or a method
# and its first parameter ("stats.fetch all"), which wins.
Answer = list[Value] | bytes | Fault


def reply_body(values: list[Value]) -> bytes:
    """The body of a reply packet holding `values`, for a SCRIPTED answer."""
    reader = PacketReader(1 << 31)
    reader.feed(encode_reply(values, 0))
    packet = reader.next_packet()
    assert packet is not None
    return packet.body


def _with_header(body: bytes, cookie: int) -> bytes:
    # magic, REPLY with a 4-byte length and a 4-byte cookie
    flags = (PacketType.REPLY << 4) | (3 << 2) | 3
    return bytes((0xA1, flags)) + len(body).to_bytes(4) + cookie.to_bytes(4) + body


def _healthy_reply(packet: Packet, replies: Mapping[str, Answer]) -> bytes:
    values = packet.values()
    method = values[0] if values else None
    if method == "system.listMethods":
        return encode_reply(list(dict.fromkeys(key.split()[0] for key in replies)), packet.cookie)
    if not isinstance(method, str):
        return encode_fault(400, "no method name", packet.cookie)
    param = values[1] if len(values) > 1 else None
    answer = replies.get(f"{method} {param}") if isinstance(param, str) else None
    if answer is None:
        answer = replies.get(method)
    if isinstance(answer, bytes):
        return _with_header(answer, packet.cookie)
    if isinstance(answer, Fault):
        return _long_fault(answer, packet.cookie)
    if answer is not None:
        return encode_reply(answer, packet.cookie)
    return encode_fault(500, f"method {method!r} not offered here", packet.cookie)


def _long_fault(fault: Fault, cookie: int) -> bytes:
    """A FAULT packet whose message is not cut to 255 bytes, as Kamailio's would be: a reply's
    body (an INT and a STR, as a fault's) under a FAULT header."""
    packet = bytearray(encode_reply([fault.code, fault.message], cookie))
    packet[1] = (PacketType.FAULT << 4) | (packet[1] & 0x0F)
    return bytes(packet)


def _reply_for(packet: Packet) -> bytes:
    """A well-formed reply of some 150 bytes, to cut in half or to dribble."""
    return encode_reply(["x" * 64, ["y" * 64, 1, 2, 3]], packet.cookie)


class HostileServer:
    """Listeners for any Behaviour, served on a private loop in a thread; stop() ends all."""

    def __init__(self, socket_dir: Path) -> None:
        self.socket_dir = socket_dir
        self.listeners: list[Listener] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hostile-binrpc", daemon=True
        )
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def listen(
        self,
        behaviour: Behaviour,
        *,
        unix: bool = False,
        replies: Mapping[str, Answer] | None = None,
    ) -> Listener:
        """Starts a listener on a free 127.0.0.1 port (or a new unix socket); `replies` are
        what a SCRIPTED listener answers."""
        listener = self._run(self._listen(behaviour, unix))
        listener.replies = replies or {}
        return listener

    async def _listen(self, behaviour: Behaviour, unix: bool) -> Listener:
        listener: Listener

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            listener.accepted += 1
            listener.open += 1
            listener.writers.add(writer)
            try:
                async with asyncio.timeout(HANG_LIMIT):
                    await self._serve(listener, reader, writer)
            except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
                pass
            finally:
                listener.writers.discard(writer)
                if not writer.is_closing():
                    writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                listener.open -= 1

        if unix:
            path = self.socket_dir / f"hostile-{len(self.listeners)}.sock"
            server = await asyncio.start_unix_server(accept, path)
            listener = Listener(behaviour, f"unix:{path}", server, path)
        else:
            server = await asyncio.start_server(accept, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            listener = Listener(behaviour, f"tcp:127.0.0.1:{port}", server)
        self.listeners.append(listener)
        return listener

    async def _serve(
        self, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        behaviour = listener.behaviour
        if behaviour in (Behaviour.RESET, Behaviour.EOF_AT_ONCE):
            if behaviour is Behaviour.RESET:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            return
        packets = PacketReader()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            request = _first_request(packets, data)
            if request is None:
                continue  # a request split across reads: wait for the rest
            if behaviour in (Behaviour.HEALTHY, Behaviour.SCRIPTED):
                writer.write(_healthy_reply(request, listener.replies))
                # The exporter pipelines: answer every complete request in the buffer.
                while (more := packets.next_packet()) is not None:
                    writer.write(_healthy_reply(more, listener.replies))
                await writer.drain()
                continue
            await self._misbehave(behaviour, request, reader, writer)
            return

    async def _misbehave(
        self,
        behaviour: Behaviour,
        request: Packet,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        reply = _reply_for(request)
        if behaviour is Behaviour.SILENT:
            pass
        elif behaviour in (Behaviour.HALF_REPLY, Behaviour.CLOSE_MID_REPLY):
            writer.write(reply[: len(reply) // 2])
            await writer.drain()
            if behaviour is Behaviour.CLOSE_MID_REPLY:
                return
        elif behaviour is Behaviour.GARBAGE:
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n" + os.urandom(64))
        elif behaviour is Behaviour.HUGE_LENGTH:
            # magic, REPLY with a 4-byte length and a 4-byte cookie, then 2 GiB announced
            flags = (PacketType.REPLY << 4) | (3 << 2) | 3
            writer.write(
                bytes((0xA1, flags))
                + (2 << 30).to_bytes(4)
                + request.cookie.to_bytes(4)
                + b"\x00" * 4096
            )
        elif behaviour is Behaviour.WRONG_COOKIE:
            writer.write(encode_reply(["ok"], (request.cookie + 1) & 0xFFFFFFFF))
        elif behaviour is Behaviour.DRIBBLE:
            for byte in reply:
                writer.write(bytes((byte,)))
                await writer.drain()
                await asyncio.sleep(DRIBBLE_INTERVAL)
        await writer.drain()
        await reader.read()  # hang on until the client gives up (HANG_LIMIT at most)

    def drop_connections(self, listener: Listener) -> None:
        """Closes every connection of a listener, as a stopping Kamailio does."""

        async def drop() -> None:
            for writer in list(listener.writers):
                writer.close()

        self._run(drop())

    def close(self, listener: Listener) -> None:
        """Stops listening (a unix socket file is removed) and drops its connections."""

        async def close() -> None:
            listener.server.close()
            for writer in list(listener.writers):
                writer.close()
            if listener.path is not None:
                listener.path.unlink(missing_ok=True)

        self._run(close())

    def stop(self) -> None:
        async def stop_all() -> None:
            for listener in self.listeners:
                listener.server.close()
                for writer in list(listener.writers):
                    writer.transport.abort()
            for listener in self.listeners:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.server.wait_closed(), 2.0)

        try:
            self._run(stop_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self._loop.close()
