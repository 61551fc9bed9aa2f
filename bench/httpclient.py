"""Lean HTTP/1.1 keep-alive clients for /probe, so that the client's own cost stays small next
to the exporter's: a blocking one for serial probes and an asyncio one for load.

Both send what Prometheus sends: its Accept header (OpenMetrics first), gzip, and the scrape
timeout header. Responses must carry Content-Length (aiohttp's web.Response always does).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
import urllib.parse

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TEXT_ACCEPT = "text/plain;version=0.0.4"


def probe_request(
    host: str,
    port: int,
    target: str,
    module: str | None = None,
    *,
    accept: str = PROMETHEUS_ACCEPT,
    scrape_timeout: float = 10.0,
) -> bytes:
    query = {"target": target} | ({"module": module} if module else {})
    return (
        f"GET /probe?{urllib.parse.urlencode(query)} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: Prometheus/2.53.0\r\n"
        f"Accept: {accept}\r\n"
        "Accept-Encoding: gzip\r\n"
        f"X-Prometheus-Scrape-Timeout-Seconds: {scrape_timeout:g}\r\n"
        "\r\n"
    ).encode()


class Response:
    __slots__ = ("body", "gzipped", "status")

    def __init__(self, status: int, gzipped: bool, body: bytes) -> None:
        self.status = status
        self.gzipped = gzipped
        self.body = body

    def text(self) -> bytes:
        return gzip.decompress(self.body) if self.gzipped else self.body

    def up(self) -> bool:
        """Whether the probe reported `kamailio_up 1`."""
        return self.status == 200 and b"\nkamailio_up 1" in b"\n" + self.text()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, content length, gzipped) from a response head."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = -1
    gzipped = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"content-encoding":
            gzipped = value.strip().lower() == b"gzip"
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not supported by the benchmark client")
    if length < 0:
        raise ValueError("response without Content-Length")
    return status, length, gzipped


class BlockingHttp:
    """One keep-alive connection, one request at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, raw: bytes) -> tuple[Response, float]:
        """Sends a raw request; returns the response and the latency in seconds."""
        started = time.perf_counter()
        self.sock.sendall(raw)
        buffer = self.buffer
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            buffer += self._recv()
        status, length, gzipped = _parse_head(buffer[:end])
        body_end = end + 4 + length
        while len(buffer) < body_end:
            buffer += self._recv()
        elapsed = time.perf_counter() - started
        self.buffer = buffer[body_end:]
        return Response(status, gzipped, buffer[end + 4 : body_end]), elapsed

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 17)
        if not chunk:
            raise ConnectionError("the exporter closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


class _HttpProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.head: tuple[int, int, bool] | None = None
        self.head_end = 0
        self.broken = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self.head = _parse_head(bytes(self.buffer[:end]))
            except ValueError as exc:
                self._fail(exc)
                return
            self.head_end = end + 4
        status, length, gzipped = self.head
        body_end = self.head_end + length
        if len(self.buffer) < body_end:
            return
        body = bytes(self.buffer[self.head_end : body_end])
        del self.buffer[:body_end]
        self.head = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(Response(status, gzipped, body))

    def _fail(self, exc: Exception) -> None:
        self.broken = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}"))


class AsyncHttpPool:
    """Keep-alive connections to one host, opened as concurrency needs them (as Prometheus'
    HTTP client does), each carrying one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[_HttpProtocol] = []
        self.opened = 0

    async def request(self, raw: bytes, timeout: float) -> Response:
        protocol = self.idle.pop() if self.idle else await self._open()
        protocol.waiter = asyncio.get_running_loop().create_future()
        assert protocol.transport is not None
        protocol.transport.write(raw)
        try:
            response = await asyncio.wait_for(protocol.waiter, timeout)
        except BaseException:
            protocol.broken = True
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        if not protocol.broken:
            self.idle.append(protocol)
        return response

    async def _open(self) -> _HttpProtocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_HttpProtocol, self.host, self.port)
        self.opened += 1
        return protocol

    def close(self) -> None:
        for protocol in self.idle:
            if protocol.transport is not None:
                protocol.transport.close()
        self.idle.clear()
