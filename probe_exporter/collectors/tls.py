"""tls.info: the tls module's connection limit and use.

Named kamailio_tls_info_* (as the florentchauveau exporter does): kamailio_tls_max_connections
and kamailio_tls_connections belong to core.tcp_info (the seed exporter's names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, int_field_families

SOURCE: Final = "tls.info"
MAX_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tls_info_max_connections", "gauge", "TLS connection limit (tls module)", (), SOURCE
)
OPENED_CONNECTIONS: Final = FamilyInfo(
    "kamailio_tls_info_opened_connections",
    "gauge",
    "Opened TLS connections (tls module)",
    (),
    SOURCE,
)
WRITE_QUEUED: Final = FamilyInfo(
    "kamailio_tls_info_clear_text_write_queued_bytes",
    "gauge",
    "Clear-text bytes queued for writing on TLS connections",
    (),
    SOURCE,
)
FAMILIES: Final = (MAX_CONNECTIONS, OPENED_CONNECTIONS, WRITE_QUEUED)
_FIELDS: Final = (
    (MAX_CONNECTIONS, "max_connections"),
    (OPENED_CONNECTIONS, "opened_connections"),
    (WRITE_QUEUED, "clear_text_write_queued_bytes"),
)


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("tls.info")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    return int_field_families(replies[0], SOURCE, _FIELDS)


COLLECTOR: Final = Collector("tls", frozenset({"tls.info"}), _calls, _collect, families=FAMILIES)
