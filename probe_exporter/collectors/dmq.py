"""dmq.list_nodes: the DMQ peers a Kamailio knows, itself included (`local` 1).

One struct per node: host, port (STR, may be empty), proto (newer versions), resolved_ip,
status, last_notification, local (and fail_count from 6.1). The node itself is listed twice when
it is also its own notification peer: such entries are one series, local when either is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..binrpc.codec import Value
from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, fields, nonempty, str_field, structs

SOURCE: Final = "dmq.list_nodes"
LABELS: Final = ("host", "port", "proto")
UP: Final = FamilyInfo(
    "kamailio_dmq_node_up", "gauge", "1 when the DMQ node is active", LABELS, SOURCE
)
STATE: Final = FamilyInfo(
    "kamailio_dmq_node_state",
    "gauge",
    "The DMQ node's status: one series per status, 1 for the current one",
    (*LABELS, "state"),
    SOURCE,
    "state: active, not_active, disabled, timeout (Kamailio 4.x), pending; any other status "
    "Kamailio reports gets its own series",
)
LOCAL: Final = FamilyInfo(
    "kamailio_dmq_node_local", "gauge", "1 for the node that is this Kamailio", LABELS, SOURCE
)
FAMILIES: Final = (UP, STATE, LOCAL)
_STATES: Final = ("active", "not_active", "disabled", "timeout", "pending")


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("dmq.list_nodes")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    up, state, local = (info.family() for info in FAMILIES)
    # labels -> (status, local); the local entry wins over its notification-peer twin
    nodes: dict[tuple[str, str, str], tuple[Value | None, bool]] = {}
    for struct in structs(replies[0], SOURCE):
        values = fields(struct)
        proto = values.get("proto", "")
        labels = (
            str_field(values, "host", SOURCE),
            str_field(values, "port", SOURCE),
            proto if isinstance(proto, str) else "",
        )
        is_local = values.get("local") == 1
        if labels not in nodes or (is_local and not nodes[labels][1]):
            nodes[labels] = (values.get("status"), is_local)
    for labels, (status, is_local) in nodes.items():
        up.samples.append((labels, 1 if status == "active" else 0))
        for name in _STATES:
            state.samples.append(((*labels, name), 1 if status == name else 0))
        if isinstance(status, str) and status and status not in _STATES:
            state.samples.append(((*labels, status), 1))
        local.samples.append((labels, 1 if is_local else 0))
    return nonempty([up, state, local])


COLLECTOR: Final = Collector(
    "dmq", frozenset({"dmq.list_nodes"}), _calls, _collect, families=FAMILIES
)
