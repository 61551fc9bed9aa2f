"""The exporter's own health, served on /metrics: never a per-target label (/probe has those)."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .pool import ConnectionPool

PROBE_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
REJECT_REASONS = ("forbidden", "bad_request", "overload")


class _PoolCollector(Collector):
    """Reads the pool's figures at scrape time, so the pool itself stays free of metric code."""

    def __init__(self, pool: Callable[[], ConnectionPool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        if pool is None:
            return
        yield GaugeMetricFamily(
            "kamailio_exporter_pool_connections",
            "BINRPC connections currently pooled.",
            value=len(pool),
        )
        yield CounterMetricFamily(
            "kamailio_exporter_pool_hits",
            "Probes that reused a pooled connection.",
            value=pool.stats.hits,
        )
        yield CounterMetricFamily(
            "kamailio_exporter_pool_misses",
            "Probes that had to open a new connection.",
            value=pool.stats.misses,
        )
        yield CounterMetricFamily(
            "kamailio_exporter_pool_evictions",
            "Pooled connections closed for idling past the TTL or to make "
            "room under the connection limit.",
            value=pool.stats.evictions,
        )


class SelfMetrics:
    def __init__(self, modules: Iterable[str], pool: Callable[[], ConnectionPool | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.registry.register(_PoolCollector(pool))
        build_info = Gauge(
            "kamailio_exporter_build_info",
            "The exporter's version and Python version; the value is always 1.",
            ["version", "python_version"],
            registry=self.registry,
        )
        build_info.labels(__version__, platform.python_version()).set(1)
        self.probes = Counter(
            "kamailio_exporter_probes",
            "Probes run, by module and result.",
            ["module", "result"],
            registry=self.registry,
        )
        self.probe_duration = Histogram(
            "kamailio_exporter_probe_duration_seconds",
            "Probe durations by module.",
            ["module"],
            buckets=PROBE_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "kamailio_exporter_probes_in_flight", "Probes running now.", registry=self.registry
        )
        self.rejected = Counter(
            "kamailio_exporter_probes_rejected",
            "Probe requests answered without probing, by reason: forbidden "
            "target (403), bad request (400), overload (503).",
            ["reason"],
            registry=self.registry,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.reload_success = Gauge(
            "kamailio_exporter_config_last_reload_successful",
            "Whether the last configuration load succeeded.",
            registry=self.registry,
        )
        self.reload_timestamp = Gauge(
            "kamailio_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, in Unix time.",
            registry=self.registry,
        )
        # Each module's series, looked up once: (successes, failures, durations)
        self._series: dict[str, tuple[Counter, Counter, Histogram]] = {}
        self.set_modules(modules)

    def set_modules(self, modules: Iterable[str]) -> None:
        """Pre-creates each module's series and drops those of modules no longer configured."""
        new = set(modules)
        for gone in self._series.keys() - new:
            for result in ("success", "failure"):
                self.probes.remove(gone, result)
            self.probe_duration.remove(gone)
        self._series = {
            module: self._series.get(module)
            or (
                self.probes.labels(module, "success"),
                self.probes.labels(module, "failure"),
                self.probe_duration.labels(module),
            )
            for module in new
        }

    def observe_probe(self, module: str, success: bool, duration: float) -> None:
        series = self._series.get(module)
        if series is not None:  # a module removed by a reload mid-probe is not recreated
            successes, failures, durations = series
            (successes if success else failures).inc()
            durations.observe(duration)
