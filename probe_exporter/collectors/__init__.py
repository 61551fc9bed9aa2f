"""Collectors: one module per RPC family, pure functions from decoded replies to metrics.

`COLLECTORS` is the registry by name, in the order their families are emitted. Each
collector lists the families it can emit (`Collector.families`); METRICS.md is generated from
them, and the stats collector never gives a statistic a name another collector may emit.
"""

from __future__ import annotations

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

__all__ = ["COLLECTORS", "Call", "Collector", "CollectorError", "CollectorOptions", "Reply"]

_OTHERS: tuple[Collector, ...] = (
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
_RESERVED = frozenset(
    name
    for collector in _OTHERS
    for info in collector.families
    for name in exposed_names(info.name, info.type)
)

COLLECTORS: dict[str, Collector] = {
    collector.name: collector for collector in (stats.make_collector(_RESERVED), *_OTHERS)
}
