"""dmq.list_nodes: the DMQ peers a Kamailio knows, itself included (`local` 1).

One struct per node: host, port (STR, may be empty), proto (newer versions), resolved_ip,
status (active, not_active or disabled), last_notification, local.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, fields, nonempty, str_field, structs

SOURCE = "dmq.list_nodes"
LABELS = ("host", "port", "proto")
UP = FamilyInfo("kamailio_dmq_node_up", "gauge", "1 when the DMQ node is active", LABELS, SOURCE)
STATE = FamilyInfo(
    "kamailio_dmq_node_state",
    "gauge",
    "The DMQ node's status: one series per status, 1 for the current one",
    (*LABELS, "state"),
    SOURCE,
    "state: active, not_active, disabled",
)
LOCAL = FamilyInfo(
    "kamailio_dmq_node_local", "gauge", "1 for the node that is this Kamailio", LABELS, SOURCE
)
FAMILIES = (UP, STATE, LOCAL)
_STATES = ("active", "not_active", "disabled")


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("dmq.list_nodes")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    up, state, local = (info.family() for info in FAMILIES)
    seen: set[tuple[str, str, str]] = set()
    for struct in structs(replies[0], SOURCE):
        values = fields(struct)
        proto = values.get("proto", "")
        labels = (
            str_field(values, "host", SOURCE),
            str_field(values, "port", SOURCE),
            proto if isinstance(proto, str) else "",
        )
        if labels in seen:
            continue
        seen.add(labels)
        status = values.get("status")
        up.samples.append((labels, 1 if status == "active" else 0))
        for name in _STATES:
            state.samples.append(((*labels, name), 1 if status == name else 0))
        local.samples.append((labels, 1 if values.get("local") == 1 else 0))
    return nonempty([up, state, local])


COLLECTOR = Collector("dmq", frozenset({"dmq.list_nodes"}), _calls, _collect, families=FAMILIES)
