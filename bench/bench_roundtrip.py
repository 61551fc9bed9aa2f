"""Round trip plus decode of `stats.fetch all` on one persistent connection (tcp and unix).

Starts a Kamailio of its own (tests/kamailio_harness.py) on free loopback ports, stops it at the
end, and prints median / p99 per transport, beside the floor (the same request on a bare socket,
reply not decoded), the decode-only share and a typical probe batch. Figures only, no
assertions.

    .venv/bin/python bench/bench_roundtrip.py [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from floor import FloorClient

from probe_exporter.binrpc.address import parse_address
from probe_exporter.binrpc.client import connect
from probe_exporter.binrpc.codec import PacketReader, encode_reply
from tests.kamailio_harness import KamailioInstance

# What one probe with the default collectors asks for, roughly.
PROBE_BATCH: list[tuple[str, tuple[str, ...]]] = [
    ("core.uptime", ()),
    ("core.version", ()),
    ("stats.fetch", ("all",)),
    ("pkg.stats", ()),
    ("core.tcp_info", ()),
    ("dlg.stats_active", ()),
    ("dispatcher.list", ()),
    ("htable.stats", ()),
]


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    median = statistics.median(ordered) * 1e6
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6
    return f"{label:<44} median {median:8.1f} us   p99 {p99:8.1f} us   (n={len(ordered)})"


def bench_floor(address_text: str, iterations: int) -> None:
    """The same round trip on a blocking socket that reads the reply without decoding it:
    Kamailio's time and the loopback's, which no client can go below."""
    floor = FloorClient(parse_address(address_text), [("stats.fetch", ("all",))])
    try:
        for _ in range(min(500, iterations)):
            floor.run()
        round_trips = [floor.run() for _ in range(iterations)]
    finally:
        floor.close()
    print(
        summary(f"{address_text.split(':')[0]}: stats.fetch all (floor: bare socket)", round_trips)
    )


async def bench_transport(address_text: str, iterations: int) -> None:
    connection = await connect(parse_address(address_text), timeout=5.0)
    try:
        for _ in range(min(500, iterations)):
            await connection.call("stats.fetch", "all")
        round_trips: list[float] = []
        for _ in range(iterations):
            started = time.perf_counter()
            await connection.call("stats.fetch", "all")
            round_trips.append(time.perf_counter() - started)
        print(summary(f"{address_text.split(':')[0]}: stats.fetch all (round trip + decode)",
                      round_trips))  # fmt: skip

        batches: list[float] = []
        for _ in range(max(1, iterations // 4)):
            started = time.perf_counter()
            await connection.call_many(PROBE_BATCH)
            batches.append(time.perf_counter() - started)
        print(
            summary(
                f"{address_text.split(':')[0]}: batch of {len(PROBE_BATCH)} probe RPCs", batches
            )
        )
    finally:
        await connection.close()


async def bench_decode_only(address_text: str, iterations: int) -> None:
    connection = await connect(parse_address(address_text), timeout=5.0)
    try:
        values = await connection.call("stats.fetch", "all")
    finally:
        await connection.close()
    packet_bytes = encode_reply(values, cookie=1)
    decodes: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        reader = PacketReader()
        reader.feed(packet_bytes)
        packet = reader.next_packet()
        assert packet is not None
        packet.result()
        decodes.append(time.perf_counter() - started)
    print(summary(f"decode only ({len(packet_bytes)} bytes, no I/O)", decodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    kamailio = KamailioInstance()
    try:
        kamailio.start()
        print(f"kamailio pid {kamailio.pid}, {kamailio.tcp}, {kamailio.unix}")
        for address in (kamailio.tcp, kamailio.unix):
            bench_floor(address, args.iterations)
            asyncio.run(bench_transport(address, args.iterations))
        asyncio.run(bench_decode_only(kamailio.unix, args.iterations))
    finally:
        kamailio.stop()


if __name__ == "__main__":
    main()
