"""BINRPC codec speed: decoding a captured `stats.fetch all` reply and encoding a request.

Run: python bench/bench_codec.py
Decoding is timed on the full path a client takes for one reply: PacketReader.feed, next_packet
and Packet.values(). Every measurement runs untimed for a while first, so the CPU (often a
virtual one) reaches a steady speed, then times a fixed number of iterations with
time.perf_counter_ns. Prints the median and 99th percentile of one iteration in microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchlib import time_operation

from probe_exporter.binrpc.codec import PacketReader, Value, encode_request

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "captures"
ITERATIONS = 10_000
WARMUP_SECONDS = 1.0


def measure(operation: Callable[[], object]) -> tuple[float, float]:
    """Median and p99 of `operation`, in microseconds."""
    return time_operation(operation, ITERATIONS, WARMUP_SECONDS)


def decode_reply(packet: bytes) -> list[Value]:
    reader = PacketReader()
    reader.feed(packet)
    reply = reader.next_packet()
    assert reply is not None
    return reply.values()


def report(label: str, operation: Callable[[], object]) -> None:
    median, p99 = measure(operation)
    print(f"{label:<44} median {median:8.1f} us   p99 {p99:8.1f} us")


def main() -> None:
    reply = (CAPTURES / "stats.fetch_all_s2c.bin").read_bytes()
    print(f"{ITERATIONS} iterations each, after {WARMUP_SECONDS:.1f} s of warm-up")
    report(f"decode stats.fetch all reply ({len(reply)} B)", lambda: decode_reply(reply))
    report(
        "encode request stats.fetch all",
        lambda: encode_request("stats.fetch", ["all"], 0x154941D3),
    )


if __name__ == "__main__":
    main()
