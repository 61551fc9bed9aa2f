"""The physical floor of a probe, and the way older exporters probe.

FloorClient replays a probe's RPCs on one persistent blocking socket, all requests in one write
(pipelined), and reads until every reply packet is complete, decoding nothing: what is left is
the network and Kamailio's own time. `sequential_probe` opens a new connection, sends the RPCs
one at a time, each waiting for its reply, and closes, as the Go exporters do on every scrape.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from benchlib import BINRPC_FAULT, split_packet

from probe_exporter.binrpc.address import Address
from probe_exporter.binrpc.codec import Param, encode_request

Calls = Sequence[tuple[str, Sequence[Param]]]


def open_socket(address: Address, timeout: float = 10.0) -> socket.socket:
    if address.transport == "tcp":
        assert address.host is not None
        assert address.port is not None
        sock = socket.create_connection((address.host, address.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if address.transport == "unix":
        assert address.path is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address.path)
        return sock
    raise ValueError(f"the floor client speaks stream transports only, not {address.transport}")


def read_replies(sock: socket.socket, count: int, buffer: bytearray) -> int:
    """Reads until `count` complete packets are in; returns how many of them were FAULTs."""
    buffer.clear()
    start = 0
    faults = 0
    while count:
        frame = split_packet(buffer, start)
        if frame is None:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buffer += chunk
            continue
        faults += frame[0] == BINRPC_FAULT
        start = frame[3]
        count -= 1
    return faults


class FloorClient:
    """The probe's RPCs, pipelined on one persistent connection, replies framed but not decoded."""

    def __init__(self, address: Address, calls: Calls) -> None:
        self.address = address
        self.count = len(calls)
        self.batch = b"".join(
            encode_request(method, params, 0x10000 + index)
            for index, (method, params) in enumerate(calls)
        )
        self.sock = open_socket(address)
        self.buffer = bytearray()
        self.faults = 0

    def run(self) -> float:
        """One pipelined batch; returns its latency in seconds."""
        started = time.perf_counter()
        self.sock.sendall(self.batch)
        self.faults += read_replies(self.sock, self.count, self.buffer)
        return time.perf_counter() - started

    def close(self) -> None:
        self.sock.close()


def sequential_probe(address: Address, calls: Calls) -> float:
    """A new connection, one RPC at a time, then close; returns the latency in seconds."""
    requests = [
        encode_request(method, params, 0x20000 + index)
        for index, (method, params) in enumerate(calls)
    ]
    buffer = bytearray()
    started = time.perf_counter()
    sock = open_socket(address)
    try:
        for request in requests:
            sock.sendall(request)
            read_replies(sock, 1, buffer)
    finally:
        sock.close()
    return time.perf_counter() - started
