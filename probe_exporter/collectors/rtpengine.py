"""rtpengine.show all: the rtpengine nodes Kamailio's rtpengine module uses.

Versions differ in what `disabled` means:
* up to 5.8, `disabled` is INT 0/1 (1 after a failed ping), or the STR "1(permanent)" for a node
  disabled by `rtpengine.enable <url> 0`; `recheck_ticks` is "N/A" then;
* from 6.0, `active` (INT) is 0 after a failed ping, and `disabled` (INT) is 1 only for a node
  disabled permanently; `recheck_ticks` is -1 then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ..binrpc.codec import Fault, Value
from ..metrics import FamilyInfo, MetricFamily
from .base import (
    Call,
    Collector,
    CollectorError,
    CollectorOptions,
    Reply,
    fault_error,
    fields,
    int_field,
    nonempty,
    shown,
    structs,
)

SOURCE: Final = "rtpengine.show all"
LABELS: Final = ("url", "set", "index", "weight")

ENABLED: Final = FamilyInfo(
    "kamailio_rtpengine_enabled",
    "gauge",
    "rtpengine connection status",
    LABELS,
    SOURCE,
    'seed; 0 for a node disabled permanently ("1(permanent)") and, from 6.0, for a node that '
    "failed its ping (active 0): the seed exporter reported both as 1",
)
PERMANENT: Final = FamilyInfo(
    "kamailio_rtpengine_disabled_permanently",
    "gauge",
    "1 when the node was disabled by rtpengine.enable, not by a failed ping",
    LABELS,
    SOURCE,
)
RECHECK: Final = FamilyInfo(
    "kamailio_rtpengine_recheck_ticks",
    "gauge",
    "Timer ticks until Kamailio checks a node disabled by a failed ping again",
    LABELS,
    SOURCE,
    "only for nodes disabled by a failed ping",
)
FAMILIES: Final = (ENABLED, PERMANENT, RECHECK)

# 404: no rtpengine set is loaded: no nodes, not a failure.
_NO_NODES: Final = 404


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("rtpengine.show", ("all",))]


def _state(values: Mapping[str | None, Value]) -> tuple[bool, bool]:
    """(enabled, disabled permanently) of one node."""
    disabled = values.get("disabled")
    if "active" in values:  # 6.0+
        return values["active"] == 1, disabled == 1
    if isinstance(disabled, str):  # "1(permanent)"
        return False, disabled.startswith("1")
    if isinstance(disabled, int):
        return disabled == 0, False
    raise CollectorError(f"{SOURCE}: a node without 'disabled' or 'active' ({shown(values)})")


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    reply = replies[0]
    if isinstance(reply, Fault):
        if reply.code == _NO_NODES:
            return []
        raise fault_error(SOURCE, reply)
    enabled_family, permanent_family, recheck_family = (info.family() for info in FAMILIES)
    seen: set[tuple[str, ...]] = set()
    for struct in structs(reply, SOURCE):
        values = fields(struct)
        url = values.get("url")
        if not isinstance(url, str) or not url:
            continue
        labels = (
            url,
            str(int_field(values, "set", SOURCE)),
            str(int_field(values, "index", SOURCE)),
            str(int_field(values, "weight", SOURCE)),
        )
        if labels in seen:
            continue
        seen.add(labels)
        enabled, permanent = _state(values)
        enabled_family.samples.append((labels, 1 if enabled else 0))
        permanent_family.samples.append((labels, 1 if permanent else 0))
        ticks = values.get("recheck_ticks")
        if not enabled and not permanent and isinstance(ticks, int) and ticks >= 0:
            recheck_family.samples.append((labels, ticks))
    return nonempty([enabled_family, permanent_family, recheck_family])


COLLECTOR: Final = Collector(
    "rtpengine", frozenset({"rtpengine.show"}), _calls, _collect, families=FAMILIES
)
