"""core.tcp_info: TCP/TLS connection limits and current use (core)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, int_field_families

SOURCE: Final = "core.tcp_info"

READERS: Final = FamilyInfo("kamailio_tcp_readers", "gauge", "TCP readers", (), SOURCE, "seed")
MAX_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tcp_max_connections", "gauge", "TCP connection limit", (), SOURCE, "seed"
)
TLS_MAX_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tls_max_connections", "gauge", "TLS connection limit", (), SOURCE, "seed"
)
TLS_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tls_connections", "gauge", "Opened TLS connections", (), SOURCE, "seed"
)
OPENED_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tcp_opened_connections",
    "gauge",
    "Opened TCP connections (core.tcp_info)",
    (),
    SOURCE,
    "the same count as kamailio_tcp_connections (statistics), without kex",
)
WRITE_QUEUED: Final = FamilyInfo(
    "kamailio_tcp_write_queued_bytes",
    "gauge",
    "Bytes queued for writing on TCP connections (async TCP only)",
    (),
    SOURCE,
)
FAMILIES: Final = (
    READERS,
    MAX_CONNECTIONS,
    TLS_MAX_CONNECTIONS,
    TLS_CONNECTIONS,
    OPENED_CONNECTIONS,
    WRITE_QUEUED,
)
_FIELDS: Final = (
    (READERS, "readers"),
    (MAX_CONNECTIONS, "max_connections"),
    (TLS_MAX_CONNECTIONS, "max_tls_connections"),
    (TLS_CONNECTIONS, "opened_tls_connections"),
    (OPENED_CONNECTIONS, "opened_connections"),
    (WRITE_QUEUED, "write_queued_bytes"),
)


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("core.tcp_info")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    return int_field_families(replies[0], SOURCE, _FIELDS)


COLLECTOR: Final = Collector(
    "tcp_info", frozenset({"core.tcp_info"}), _calls, _collect, families=FAMILIES
)
