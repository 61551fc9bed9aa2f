"""Collectors: one module per RPC family, pure functions from decoded replies to metrics.

`COLLECTORS` is the registry by name, in the order their families are emitted. Each
collector lists the families it can emit (`Collector.families`); METRICS.md is generated from
them, the stats collector never gives a statistic a name another collector may emit, and a
merged exposition never takes a name `is_reserved` (whether or not a collector ran).
"""

from __future__ import annotations

from typing import Final

from ..metrics import exposed_names
from . import (
    core,
    dialog,
    dispatcher,
    dmq,
    htable,
    pkg,
    rtpengine,
    shmmem,
    sl,
    stats,
    tcp_info,
    tls,
    tm,
    uac,
)
from .base import Call, Collector, CollectorError, CollectorOptions, Reply

__all__ = [
    "COLLECTORS",
    "Call",
    "Collector",
    "CollectorError",
    "CollectorOptions",
    "Reply",
    "is_reserved",
]

_OTHERS: Final[tuple[Collector, ...]] = (
    pkg.COLLECTOR,
    tcp_info.COLLECTOR,
    core.COLLECTOR,
    shmmem.COLLECTOR,
    tm.COLLECTOR,
    sl.COLLECTOR,
    rtpengine.COLLECTOR,
    dispatcher.COLLECTOR,
    dialog.COLLECTOR,
    htable.COLLECTOR,
    tls.COLLECTOR,
    dmq.COLLECTOR,
    uac.COLLECTOR,
)
_RESERVED: Final = frozenset(
    name
    for collector in _OTHERS
    for info in collector.families
    for name in exposed_names(info.name, info.type)
)

COLLECTORS: Final[dict[str, Collector]] = {
    collector.name: collector for collector in (stats.make_collector(_RESERVED), *_OTHERS)
}

# Every name (text 0.0.4 and OpenMetrics) of every family a collector declares, and the names of
# the probe's own families (kamailio_up, kamailio_probe_*, kamailio_exporter_*) and of the
# stats collector's generic families (kamailio_stats_*), whatever the probe's collectors.
_DECLARED: Final = frozenset(
    name
    for collector in COLLECTORS.values()
    for info in collector.families
    if not info.is_pattern
    for name in exposed_names(info.name, info.type)
) | {stats.PROBE_NAME}
_RESERVED_PREFIXES: Final = (*stats.PROBE_PREFIXES, "kamailio_stats_")


def is_reserved(name: str) -> bool:
    """Whether `name` belongs to the exporter: a merged exposition may not take it."""
    return name in _DECLARED or name.startswith(_RESERVED_PREFIXES)
