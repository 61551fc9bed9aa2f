"""What idling costs on this machine, without the exporter's I/O: the CPU time of one and the
same piece of the exporter's work, run back to back and after sleeping.

The work is a full-set probe's in-process part: decode the captured replies, run every
collector, render OpenMetrics and gzip it (no sockets, no event loop, no other process). Its
CPU time (the thread's own, CLOCK_THREAD_CPUTIME_ID) after a sleep, divided by its CPU time back
to back, is the machine's idle penalty; set beside the exporter's paced and back-to-back CPU per
probe, it tells whether the exporter adds anything of its own when probes come spread out.

Run: python bench/idle_penalty.py --captures DIR [--captures DIR2] [--count 300]
     prints one JSON object: per sleep (ms), CPU us per run and the ratio to no sleep.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from replay_server import load_captures

from probe_exporter.binrpc.codec import (
    Fault,
    Packet,
    PacketReader,
    PacketType,
    encode_request,
)
from probe_exporter.collectors import COLLECTORS, CollectorError, CollectorOptions, Reply
from probe_exporter.exposition import render_openmetrics
from probe_exporter.metrics import MetricFamily

SLEEPS = (0.0, 0.001, 0.003, 0.015)  # 15 ms: the gap between probes of 1,000 targets at 15 s
# An RPC the captures lack: Kamailio's FAULT for an unknown method.
NOT_FOUND = Packet(PacketType.FAULT, 0, b"\x20\x01\xf4\x91\x12command not found\x00")


def probe_work(directories: list[Path]) -> Callable[[], int]:
    """The decode-collect-render-compress work of one full-set probe, on captured replies."""
    replies = load_captures(directories)
    options = CollectorOptions()
    plan: list[tuple[Callable[..., list[MetricFamily]], list[Packet]]] = []
    for collector in COLLECTORS.values():
        packets = []
        for call in collector.calls(options):
            reader = PacketReader()
            reader.feed(encode_request(call.method, call.params, 0))
            request = reader.next_packet()
            assert request is not None
            reply = replies.get(request.body)
            packets.append(
                NOT_FOUND if reply is None else Packet(PacketType(reply[0]), 0, reply[1])
            )
        plan.append((collector.collect, packets))

    def run() -> int:
        families: list[MetricFamily] = []
        for collect, packets in plan:
            decoded: list[Reply] = []
            for packet in packets:
                try:
                    decoded.append(packet.result())
                except Fault as fault:
                    decoded.append(fault)
            try:
                families += collect(decoded, options)
            except CollectorError:  # a module the captured Kamailio did not load
                continue
        return len(gzip.compress(render_openmetrics(families), compresslevel=1, mtime=0))

    return run


def measure(run: Callable[[], int], count: int, block: int) -> dict[str, dict[str, float]]:
    """CPU us per run after each sleep; the sleeps take turns in blocks of `block` runs."""
    spent = dict.fromkeys(SLEEPS, 0.0)
    done = dict.fromkeys(SLEEPS, 0)
    for _ in range(block):  # warm-up
        run()
    while min(done.values()) < count:
        for sleep in SLEEPS:
            for _ in range(block):
                if sleep:
                    time.sleep(sleep)
                started = time.thread_time()
                run()
                spent[sleep] += time.thread_time() - started
                done[sleep] += 1
    back_to_back = spent[0.0] / done[0.0]
    return {
        f"{sleep * 1000:g}": {
            "cpu_us": 1e6 * spent[sleep] / done[sleep],
            "ratio": spent[sleep] / done[sleep] / back_to_back,
            "n": done[sleep],
        }
        for sleep in SLEEPS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, action="append", required=True)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    block = max(min(args.count // 5, 50), 1)
    print(json.dumps(measure(probe_work(args.captures), args.count, block)))


if __name__ == "__main__":
    main()
