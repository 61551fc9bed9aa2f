"""Exposition speed: our render_text against prometheus_client's generate_latest, same families.

Run: python bench/bench_exposition.py
The families are those of the seed exporter's RPC set (stats.fetch all, pkg.stats,
core.tcp_info, rtpengine.show all), collected from the captured replies of a real Kamailio.
Also times the whole path of those four replies: decode (PacketReader, from the raw bytes),
collect and render. Each measurement runs untimed for a while first (the CPU, often a virtual
one, reaches a steady speed), then times a fixed number of iterations; prints the median and
99th percentile of one iteration in microseconds, and the ratio of the medians.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from benchlib import time_operation
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UntypedMetricFamily,
)
from prometheus_client.exposition import generate_latest

from probe_exporter.binrpc.codec import PacketReader
from probe_exporter.collectors import COLLECTORS, CollectorOptions, Reply
from probe_exporter.exposition import render_openmetrics, render_text
from probe_exporter.metrics import MetricFamily

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "captures"
SEED_SET = (
    ("stats", "stats.fetch_all"),
    ("pkg", "pkg.stats"),
    ("tcp_info", "core.tcp_info"),
    ("rtpengine", "rtpengine.show_all"),
)
ITERATIONS = 5_000
WARMUP_SECONDS = 1.0


def measure(operation: Callable[[], object]) -> tuple[float, float]:
    """Median and p99 of `operation`, in microseconds."""
    return time_operation(operation, ITERATIONS, WARMUP_SECONDS)


def decode(packet: bytes) -> Reply:
    reader = PacketReader()
    reader.feed(packet)
    decoded = reader.next_packet()
    assert decoded is not None
    return decoded.result()


def pipeline(packets: list[tuple[str, bytes]]) -> bytes:
    options = CollectorOptions()
    families: list[MetricFamily] = []
    for collector, packet in packets:
        families += COLLECTORS[collector].collect([decode(packet)], options)
    return render_text(families)


class ClientCollector:
    """The same families as prometheus_client metric objects, for generate_latest."""

    def __init__(self, families: list[MetricFamily]) -> None:
        self.metrics: list[Metric] = []
        for family in families:
            labels = list(family.labelnames)
            metric: Metric
            if family.type == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=labels)
            elif family.type == "gauge":
                metric = GaugeMetricFamily(family.name, family.help, labels=labels)
            else:
                metric = UntypedMetricFamily(family.name, family.help, labels=labels)
            for values, value in family.samples:
                metric.add_metric(list(values), value)
            self.metrics.append(metric)

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def main() -> None:
    packets = [
        (collector, (CAPTURES / f"{capture}_s2c.bin").read_bytes())
        for collector, capture in SEED_SET
    ]
    families = [
        family
        for collector, packet in packets
        for family in COLLECTORS[collector].collect([decode(packet)], CollectorOptions())
    ]
    samples = sum(len(family.samples) for family in families)
    client = ClientCollector(families)
    ours = measure(lambda: render_text(families))
    theirs = measure(lambda: generate_latest(client))
    openmetrics = measure(lambda: render_openmetrics(families))
    whole = measure(lambda: pipeline(packets))
    print(f"seed set: {len(families)} families, {samples} samples")
    print(
        f"render_text median {ours[0]:.1f} us p99 {ours[1]:.1f} us "
        f"({ours[0] / samples * 1000:.0f} ns per sample)"
    )
    print(
        f"prometheus_client generate_latest median {theirs[0]:.1f} us p99 {theirs[1]:.1f} us "
        f"({theirs[0] / samples * 1000:.0f} ns per sample)"
    )
    print(f"render_openmetrics median {openmetrics[0]:.1f} us p99 {openmetrics[1]:.1f} us")
    print(f"generate_latest / render_text: {theirs[0] / ours[0]:.1f}x")
    print(
        f"decode + collect + render_text (4 replies) median {whole[0]:.1f} us p99 {whole[1]:.1f} us"
    )


if __name__ == "__main__":
    main()
