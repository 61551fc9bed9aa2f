"""A fleet of simulated Kamailio ctl sockets in one asyncio process, answering BINRPC requests
with real captured replies.

Replies come from capture directories holding pairs `NAME_c2s.bin` (the request packet) and
`NAME_s2c.bin` (the reply packet), like tests/fixtures/captures/; a request is matched by its
body (method and parameters), and its reply goes out with the request's cookie, byte for byte
as captured otherwise. A request without a capture gets Kamailio's own FAULT
"500 command X not found". Later directories win over earlier ones for the same request.

Run: python bench/replay_server.py --captures DIR [--captures DIR2] --tcp 1000 [--host ADDR]
     (or --unix 1000 --unix-dir DIR); prints "addresses FILE" when every socket listens,
     writes one Kamailio address per line to FILE, and exits on SIGTERM or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from benchlib import binrpc_header, raise_fd_limit, split_packet, until_stopped

from probe_exporter.binrpc.codec import decode_values, encode_fault


def load_captures(directories: list[Path]) -> dict[bytes, tuple[int, bytes]]:
    """Request body -> (reply packet type, reply body), from every *_c2s.bin/*_s2c.bin pair."""
    replies: dict[bytes, tuple[int, bytes]] = {}
    for directory in directories:
        for request_file in sorted(directory.glob("*_c2s.bin")):
            reply_file = request_file.with_name(request_file.name[:-8] + "_s2c.bin")
            if not reply_file.exists():
                continue
            request = request_file.read_bytes()
            reply = reply_file.read_bytes()
            request_frame = split_packet(request)
            reply_frame = split_packet(reply)
            if request_frame is None or reply_frame is None:
                raise ValueError(f"{request_file.name}: incomplete packet")
            replies[request[request_frame[2] : request_frame[3]]] = (
                reply_frame[0],
                reply[reply_frame[2] : reply_frame[3]],
            )
    return replies


class ReplayProtocol(asyncio.Protocol):
    """One ctl connection: answers every complete request in the order it came."""

    replies: dict[bytes, tuple[int, bytes]] = {}
    counters = {"requests": 0, "unknown": 0, "connections": 0}

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.counters["connections"] += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        start = 0
        while True:
            try:
                frame = split_packet(buffer, start)
            except ValueError:
                assert self.transport is not None
                self.transport.close()
                return
            if frame is None:
                break
            _, cookie, body_start, end = frame
            out.append(self._answer(bytes(buffer[body_start:end]), cookie))
            start = end
        if start:
            del buffer[:start]
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    def _answer(self, body: bytes, cookie: int) -> bytes:
        self.counters["requests"] += 1
        reply = self.replies.get(body)
        if reply is not None:
            packet_type, reply_body = reply
            return binrpc_header(packet_type, len(reply_body), cookie) + reply_body
        self.counters["unknown"] += 1
        try:
            method = str(decode_values(body)[0])
        except Exception:  # a request that does not even decode: Kamailio answers a fault too
            method = "?"
        return encode_fault(500, f"command {method} not found", cookie)


async def serve(args: argparse.Namespace) -> None:
    ReplayProtocol.replies = load_captures(args.captures)
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    addresses: list[str] = []
    if args.tcp:
        for _ in range(args.tcp):
            server = await loop.create_server(ReplayProtocol, args.host, 0, backlog=1024)
            servers.append(server)
            addresses.append(f"tcp:{args.host}:{server.sockets[0].getsockname()[1]}")
    if args.unix:
        args.unix_dir.mkdir(parents=True, exist_ok=True)
        for index in range(args.unix):
            path = args.unix_dir / f"ctl{index}"
            path.unlink(missing_ok=True)
            servers.append(await loop.create_unix_server(ReplayProtocol, str(path), backlog=1024))
            addresses.append(f"unix:{path}")
    args.addresses_out.write_text("\n".join(addresses) + "\n")
    print(f"addresses {args.addresses_out}", flush=True)
    print(f"replies {len(ReplayProtocol.replies)}", flush=True)

    await until_stopped(args.max_seconds)
    for server in servers:
        server.close()
    counters = ReplayProtocol.counters
    print(
        f"served {counters['requests']} requests ({counters['unknown']} without a capture) "
        f"on {counters['connections']} connections",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, action="append", required=True)
    parser.add_argument("--tcp", type=int, default=0, help="targets on TCP ports of --host")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--unix", type=int, default=0, help="targets on unix stream sockets")
    parser.add_argument("--unix-dir", type=Path, default=Path("/tmp/replay-ctl"))
    parser.add_argument("--addresses-out", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    raise_fd_limit()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
