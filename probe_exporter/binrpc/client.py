"""An asyncio BINRPC client for Kamailio's ctl module.

A Connection carries one request batch at a time (concurrent callers wait on a lock). On a stream
socket (tcp, unix) a batch goes out in one write and the replies come back in request order, each
echoing its request's cookie; Kamailio's ctl process serves requests strictly in order, so this
pipelining is safe. On a datagram socket (udp, unixd) Kamailio reads one request per datagram, so
requests go one at a time, each waiting for its reply.

Faults are replies: call_many returns them in place. Anything else that goes wrong during a call
(timeout, EOF, reset, malformed bytes, a wrong cookie, cancellation) leaves the byte stream in an
unknown state, so the connection is marked broken, closed, and never used again.
"""

import abc
import asyncio
import socket
from collections.abc import Sequence

from ..errors import describe_os_error
from .address import Address
from .codec import (
    DEFAULT_MAX_PACKET_SIZE,
    MAGIC,
    BinRpcError,
    Fault,
    Packet,
    PacketReader,
    Param,
    ProtocolError,
    Reply,
    Value,
    encode_request,
    new_cookie,
)
from .errors import (
    BusyTimeout,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    CookieMismatch,
    NotBinRpc,
    RepliesTooLarge,
    ReplyTimeout,
)
from .hints import SHOWN_BYTES, foreign_answer, permission_hint

__all__ = [
    "BusyTimeout",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "ConnectionLost",
    "CookieMismatch",
    "DatagramConnection",
    "NotBinRpc",
    "RepliesTooLarge",
    "Reply",
    "ReplyTimeout",
    "StreamConnection",
    "connect",
]


def _not_binrpc(address: Address, head: bytes) -> NotBinRpc:
    return NotBinRpc(f"{address}: the peer {foreign_answer(head)}: is this the ctl port?", 0)


class _ReplyProtocol(asyncio.Protocol):
    """Turns received bytes into packets and hands them to the one batch waiting for them."""

    def __init__(self, address: Address, max_packet_size: int) -> None:
        self.address = address
        self.transport: asyncio.BaseTransport | None = None
        self.reader = PacketReader(max_packet_size)
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        # Why the connection cannot be used any more; None while it is healthy.
        self.failure: BinRpcError | None = None
        self.answered = False
        self._waiter: asyncio.Future[list[Packet]] | None = None
        self._cookies: Sequence[int] = ()
        self._packets: list[Packet] = []
        self._received = 0  # replies of the current (or last) batch, for progress()
        self._arrivals: list[float] | None = None
        # bytes the current batch may still receive (None: no limit but the packet size)
        self._bytes_left: int | None = None
        self._max_batch_bytes = 0

    def limit(self, max_reply_bytes: int, max_batch_bytes: int | None) -> None:
        """Sets the limits of the next batch: bytes per reply and bytes in all."""
        self.reader.max_packet_size = max_reply_bytes
        self._bytes_left = max_batch_bytes
        self._max_batch_bytes = max_batch_bytes or 0

    def expect(
        self, cookies: Sequence[int], arrivals: list[float] | None
    ) -> asyncio.Future[list[Packet]]:
        waiter: asyncio.Future[list[Packet]] = self.loop.create_future()
        self._waiter = waiter
        self._cookies = cookies
        self._packets = []
        self._received = 0
        self._arrivals = arrivals
        return waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._bytes_left is not None and self._waiter is not None:
            self._bytes_left -= len(data)
            if self._bytes_left < 0:
                size = self._max_batch_bytes - self._bytes_left
                self.fail(
                    RepliesTooLarge(
                        f"{self.address}: replies of more than {size} bytes exceed the"
                        f" limit of {self._max_batch_bytes} bytes",
                        size,
                        self._max_batch_bytes,
                    )
                )
                return
        self.reader.feed(data)
        try:
            packet = self.reader.next_packet()
            if packet is None:
                return
            now = self.loop.time()
            while packet is not None:
                self._accept(packet, now)
                packet = self.reader.next_packet()
        except ProtocolError as exc:
            head = self.reader.peek(SHOWN_BYTES + 1)
            foreign = not self.answered and bool(head) and head[0] != MAGIC
            self.fail(_not_binrpc(self.address, head) if foreign else exc)
            return
        waiter = self._waiter
        if waiter is not None and len(self._packets) == len(self._cookies):
            packets = self._packets
            # The replies are the caller's now: an idle pooled connection keeps none of them.
            self._waiter, self._packets, self._arrivals = None, [], None
            if not waiter.done():
                waiter.set_result(packets)

    def _accept(self, packet: Packet, now: float) -> None:
        index = len(self._packets)
        if self._waiter is None or index >= len(self._cookies):
            raise ProtocolError(f"{self.address}: unsolicited packet (cookie {packet.cookie:#x})")
        expected = self._cookies[index]
        if packet.cookie != expected:
            raise CookieMismatch(
                f"{self.address}: reply cookie {packet.cookie:#x}"
                f" does not match request cookie {expected:#x}"
            )
        self._packets.append(packet)
        self._received += 1
        if self._arrivals is not None:
            self._arrivals.append(now)
        self.answered = True

    def eof_received(self) -> bool:
        self.fail(ConnectionLost(self._lost_message("closed by the server")))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(
            ConnectionLost(self._lost_message("closed" if exc is None else describe_os_error(exc)))
        )
        if not self.closed.done():
            self.closed.set_result(None)

    def _lost_message(self, reason: str) -> str:
        if self.answered or self.reader.buffered:
            if self._waiter is None:
                return f"{self.address}: connection lost ({reason})"
            return f"{self.address}: connection lost ({reason}) with {self.progress()}"
        # Kamailio accepts and at once closes stream connections beyond its limit of 128: lost
        # before it ever answered, whether the first request was sent yet or not.
        return (
            f"{self.address}: connection lost ({reason}) before the first reply"
            " (Kamailio at its limit of 128 ctl connections, or shutting down? or not a ctl port?)"
        )

    def progress(self) -> str:
        """How far the current (or last) batch got: says a silent peer from a slow one."""
        received = f"{self._received} of {len(self._cookies)} replies"
        if self.reader.buffered:
            received += f" and {self.reader.buffered} bytes of the next"
        elif not self.answered and self._cookies:
            # A SIP or HTTP port accepts a connection, reads the request and waits for more.
            return (
                f"{received} received, not a byte on this connection: a hung Kamailio,"
                " or a port that is not ctl's, as SIP and HTTP ports stay silent"
            )
        return f"{received} received"

    def fail(self, error: BinRpcError) -> None:
        """Marks the connection broken (the first reason sticks), wakes the waiter, closes."""
        if self.failure is None:
            self.failure = error
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(self.failure)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class _DatagramReplyProtocol(_ReplyProtocol, asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: object) -> None:
        self.data_received(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected datagram socket this is an ICMP port unreachable (udp) or a missing
        # receiver (unixd): nobody listens at the address.
        self.fail(ConnectError(f"{self.address}: {describe_os_error(exc)}"))


class Connection(abc.ABC):
    """One BINRPC connection; see StreamConnection and DatagramConnection."""

    address: Address

    def __init__(self, address: Address, protocol: _ReplyProtocol, timeout: float) -> None:
        self.address = address
        self._protocol = protocol
        self._timeout = timeout
        self._max_packet_size = protocol.reader.max_packet_size
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def usable(self) -> bool:
        """False once the connection broke or was closed; it is then never used again."""
        return not self._closed and self._protocol.failure is None

    @property
    def progress(self) -> str:
        """How many replies (and bytes of the next) the current or last batch received."""
        return self._protocol.progress()

    async def call(self, method: str, *params: Param, timeout: float | None = None) -> list[Value]:
        """One RPC; returns its top-level values, raises Fault for a FAULT reply."""
        (reply,) = await self.call_many([(method, params)], timeout=timeout)
        if isinstance(reply, Fault):
            raise reply
        return reply

    async def call_many(
        self,
        calls: Sequence[tuple[str, Sequence[Param]]],
        *,
        timeout: float | None = None,
        arrivals: list[float] | None = None,
    ) -> list[Reply]:
        """Runs the calls in order; one Reply per call, faults returned in place.

        `timeout` bounds the whole batch (default: the timeout given to connect()). `arrivals`,
        when given, gets loop.time() appended as each reply arrives. Any error but a fault breaks
        and closes the connection, then propagates: ReplyTimeout, ConnectionLost, ConnectError
        (datagram: nobody listens), ProtocolError (CookieMismatch among them). Other callers'
        batches holding the connection past the deadline raise BusyTimeout instead, leaving
        the connection as it is.
        """
        packets = await self.exchange(calls, timeout=timeout, arrivals=arrivals)
        replies: list[Reply] = []
        try:
            for packet in packets:
                try:
                    replies.append(packet.result())
                except Fault as fault:
                    # No traceback: it would tie this frame, and every reply, into a cycle.
                    replies.append(fault.with_traceback(None))
        except ProtocolError as exc:
            self.discard(exc)
            raise
        return replies

    async def exchange(
        self,
        calls: Sequence[tuple[str, Sequence[Param]]],
        *,
        timeout: float | None = None,
        arrivals: list[float] | None = None,
        max_reply_bytes: int | None = None,
        max_batch_bytes: int | None = None,
    ) -> list[Packet]:
        """call_many without decoding: the reply packets, in order, cookies checked, for a
        caller that decodes them itself (see codec.decode_slices).

        A reply longer than `max_reply_bytes` (default: the connection's packet size limit)
        raises PacketTooLarge, replies of more than `max_batch_bytes` in all RepliesTooLarge;
        both break the connection, as any error but BusyTimeout does.
        """
        if not calls:
            return []
        limit = self._timeout if timeout is None else timeout
        deadline = self._protocol.loop.time() + limit
        # Waiting for another caller's batch counts against this batch's deadline; running out
        # while waiting leaves the connection as it is.
        try:
            if self._lock.locked():
                async with asyncio.timeout_at(deadline):
                    await self._lock.acquire()
            else:
                # The usual case, no timer: an unlocked lock is taken at once (unless a waiter
                # woken by its release is queued; that one's own deadline bounds the wait).
                await self._lock.acquire()
        except TimeoutError:
            raise BusyTimeout(
                f"{self.address}: connection busy with other calls for {limit:g} s"
            ) from None
        try:
            self._check_usable()
            cookies = [new_cookie() for _ in calls]
            requests = [
                encode_request(method, params, cookie)
                for (method, params), cookie in zip(calls, cookies, strict=True)
            ]
            self._protocol.limit(
                self._max_packet_size if max_reply_bytes is None else max_reply_bytes,
                max_batch_bytes,
            )
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._exchange(requests, cookies, arrivals)
            except TimeoutError:
                message = (
                    f"{self.address}: no reply within {limit:g} s ({self._protocol.progress()})"
                )
                self._protocol.fail(ConnectionLost(message))
                raise ReplyTimeout(message) from None
            except BinRpcError as exc:
                self._protocol.fail(exc)
                raise
            except BaseException as exc:
                # Cancelled (or worse) in the middle of an exchange: replies may still come.
                self._protocol.fail(ConnectionLost(f"{self.address}: call abandoned: {exc!r}"))
                raise
        finally:
            self._lock.release()

    def discard(self, error: BinRpcError) -> None:
        """Marks the connection broken, with `error` as the reason, and closes it: for a peer
        whose replies came whole but could not be used (malformed, beyond a limit)."""
        self._protocol.fail(error)

    @abc.abstractmethod
    async def _exchange(
        self, requests: list[bytes], cookies: list[int], arrivals: list[float] | None
    ) -> list[Packet]:
        """Sends the requests and returns their reply packets, in order, cookies checked."""

    def _check_usable(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.address}: connection closed")
        failure = self._protocol.failure
        if failure is not None:
            raise ConnectionLost(f"{self.address}: connection unusable: {failure}")

    async def close(self) -> None:
        """Closes the socket; waits (briefly) until it is closed. Safe to call twice."""
        self._closed = True
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        # connection_lost follows transport.close() on the next loop iterations.
        await asyncio.wait([self._protocol.closed], timeout=1.0)


class StreamConnection(Connection):
    """tcp and unix: a batch goes out in one write; replies are read in order."""

    def __init__(
        self,
        address: Address,
        transport: asyncio.WriteTransport,
        protocol: _ReplyProtocol,
        timeout: float,
    ) -> None:
        super().__init__(address, protocol, timeout)
        self._transport = transport

    async def _exchange(
        self, requests: list[bytes], cookies: list[int], arrivals: list[float] | None
    ) -> list[Packet]:
        waiter = self._protocol.expect(cookies, arrivals)
        self._transport.write(requests[0] if len(requests) == 1 else b"".join(requests))
        return await waiter


class DatagramConnection(Connection):
    """udp and unixd: one request per datagram, each waiting for its reply datagram."""

    def __init__(
        self,
        address: Address,
        transport: asyncio.DatagramTransport,
        protocol: _ReplyProtocol,
        timeout: float,
    ) -> None:
        super().__init__(address, protocol, timeout)
        self._transport = transport

    async def _exchange(
        self, requests: list[bytes], cookies: list[int], arrivals: list[float] | None
    ) -> list[Packet]:
        packets: list[Packet] = []
        for request, cookie in zip(requests, cookies, strict=True):
            waiter = self._protocol.expect((cookie,), arrivals)
            self._transport.sendto(request)
            packets.extend(await waiter)
        return packets


async def connect(
    address: Address, *, timeout: float, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE
) -> Connection:
    """Opens a connection to a Kamailio ctl socket within `timeout` seconds.

    `timeout` is also the default deadline of each call_many batch. Raises ConnectError
    (ConnectTimeout when the time ran out).
    """
    try:
        async with asyncio.timeout(timeout):
            return await _open(address, timeout, max_packet_size)
    except TimeoutError:
        raise ConnectTimeout(f"{address}: connect timed out after {timeout:g} s") from None
    except socket.gaierror as exc:
        raise ConnectError(f"{address}: cannot resolve {address.host!r}: {exc.strerror}") from None
    except FileNotFoundError:
        raise ConnectError(
            f"{address}: no socket file there: is Kamailio running,"
            f' and ctl\'s binrpc set to "{address}"?'
        ) from None
    except ConnectionRefusedError as exc:
        if address.path is None:
            hint = "is ctl loaded and listening on this address?"
        else:
            hint = "the socket file is there but nothing listens (a stopped Kamailio's?)"
        raise ConnectError(f"{address}: {describe_os_error(exc)}: {hint}") from None
    except PermissionError as exc:
        if address.path is None:
            raise ConnectError(f"{address}: {describe_os_error(exc)}") from None
        raise ConnectError(
            f"{address}: {describe_os_error(exc)}: {permission_hint(address.path)}"
        ) from None
    except (ConnectionResetError, BrokenPipeError) as exc:
        # Accepted, then closed at once: how Kamailio turns away connections beyond 128.
        raise ConnectError(
            f"{address}: {describe_os_error(exc)} right after connecting"
            " (Kamailio at its limit of 128 ctl connections, or shutting down?)"
        ) from None
    except OSError as exc:
        raise ConnectError(f"{address}: {describe_os_error(exc)}") from None


async def _open(address: Address, call_timeout: float, max_packet_size: int) -> Connection:
    loop = asyncio.get_running_loop()
    host, port, path = address.host, address.port, address.path
    if address.transport == "tcp" and host is not None and port is not None:
        stream = _ReplyProtocol(address, max_packet_size)
        transport, _ = await loop.create_connection(lambda: stream, host, port)
        return StreamConnection(address, transport, stream, call_timeout)
    if address.transport == "unix" and path is not None:
        stream = _ReplyProtocol(address, max_packet_size)
        transport, _ = await loop.create_unix_connection(lambda: stream, path)
        return StreamConnection(address, transport, stream, call_timeout)
    datagram = _DatagramReplyProtocol(address, max_packet_size)
    if address.transport == "udp" and host is not None and port is not None:
        endpoint, _ = await loop.create_datagram_endpoint(
            lambda: datagram, remote_addr=(host, port)
        )
    elif address.transport == "unixd" and path is not None:
        endpoint, _ = await loop.create_datagram_endpoint(
            lambda: datagram, sock=_unix_datagram_socket(path)
        )
    else:
        raise ConnectError(f"{address!r}: incomplete address")
    return DatagramConnection(address, endpoint, datagram, call_timeout)


def _unix_datagram_socket(path: str) -> socket.socket:
    """A unix datagram socket connected to the server and bound to an address of its own.

    Kamailio answers with sendto() to the sender's address, so an unbound client gets no reply.
    Binding to "" autobinds to a unique Linux abstract address: no file to clean up.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind("")
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock
