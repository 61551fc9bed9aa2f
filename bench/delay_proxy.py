"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time in each direction: a stand-in
for `tc netem delay` where the kernel has no netem qdisc.

Each chunk read from one side is written to the other side `--delay` seconds after it arrived,
in order. A new connection also pays the TCP handshake's round trip: the first bytes from the
client go upstream no earlier than 3 x delay after the accept (SYN, SYN-ACK, then the data), as
over a real link with that one-way delay. Runs in its own process, so that a benchmark's
blocking client cannot hold the delayed bytes back.

Run: python bench/delay_proxy.py --upstream HOST:PORT --delay 0.02; prints "listening PORT".
Exits on SIGTERM or after --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys

from benchlib import until_stopped


class DelayedWriter:
    """Writes chunks to a transport, each `delay` seconds after it was queued (and not before
    `not_before`), preserving their order."""

    def __init__(self, delay: float, not_before: float = 0.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.delay = delay
        self.not_before = not_before
        self.transport: asyncio.Transport | None = None
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.close_when_drained = False

    def push(self, data: bytes) -> None:
        self.queue.append((max(self.loop.time() + self.delay, self.not_before), data))
        self._schedule()

    def close_later(self) -> None:
        self.close_when_drained = True
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is not None or self.transport is None:
            return
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self._flush)
        elif self.close_when_drained:
            self.transport.close()

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        chunks = []
        while self.queue and self.queue[0][0] <= now:
            chunks.append(self.queue.popleft()[1])
        if chunks and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(chunks))
        self._schedule()

    def attach(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._schedule()


class Side(asyncio.Protocol):
    """One end of a proxied connection: what it reads goes to the other end's writer."""

    def __init__(self, to_peer: DelayedWriter, own_writer: DelayedWriter) -> None:
        self.to_peer = to_peer
        self.own_writer = own_writer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.own_writer.attach(transport)

    def data_received(self, data: bytes) -> None:
        self.to_peer.push(data)

    def eof_received(self) -> bool:
        self.to_peer.close_later()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.to_peer.close_later()


class ClientSide(Side):
    """Accepted from the client; opens the upstream connection at once."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        loop = asyncio.get_running_loop()
        handshake_done = loop.time() + 3 * delay
        super().__init__(DelayedWriter(delay, handshake_done), DelayedWriter(delay))
        self.upstream = upstream
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.task = asyncio.get_running_loop().create_task(self._connect(transport))

    async def _connect(self, client: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: Side(self.own_writer, self.to_peer), *self.upstream
            )
        except OSError as exc:
            print(f"upstream connect failed: {exc}", file=sys.stderr)
            client.close()


async def serve(args: argparse.Namespace) -> None:
    host, _, port = args.upstream.rpartition(":")
    upstream = (host, int(port))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientSide(upstream, args.delay), "127.0.0.1", args.listen_port
    )
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await until_stopped(args.max_seconds)
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds, each direction")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
