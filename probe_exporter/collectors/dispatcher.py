"""dispatcher.list: the dispatcher module's destinations, per set and URI.

FLAGS is two characters: the state, A(ctive), I(nactive), D(isabled by an operator) or
T(rying: failing pings but still selected), then P (probed with keepalives), N (never probed)
or X (neither). LATENCY (with ds_ping_latency_stats) is in milliseconds, exported in seconds;
RUNTIME (with ds_hash_size) carries the dialog load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..binrpc.codec import Fault, Struct, Value
from ..metrics import FamilyInfo, MetricFamily, MetricType
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
    number_field,
    shown,
    single_struct,
    str_field,
)

SOURCE: Final = "dispatcher.list"
LABELS: Final = ("set_id", "set_name", "destination")


def _target(name: str, type_: MetricType, help_: str, note: str = "") -> FamilyInfo:
    return FamilyInfo(name, type_, help_, LABELS, SOURCE, note)


SETS: Final = FamilyInfo("kamailio_dispatcher_sets", "gauge", "Destination sets loaded", (), SOURCE)
UP: Final = _target(
    "kamailio_dispatcher_target_up",
    "gauge",
    "1 when the destination can be selected (state active or trying), 0 when inactive or disabled",
)
STATE: Final = FamilyInfo(
    "kamailio_dispatcher_target_state",
    "gauge",
    "The destination's state: one series per state, 1 for the current one",
    (*LABELS, "state"),
    SOURCE,
    "state: active, inactive, disabled, trying",
)
PROBING: Final = _target(
    "kamailio_dispatcher_target_probing",
    "gauge",
    "1 when Kamailio probes the destination with keepalives (flag P)",
)
PRIORITY: Final = _target(
    "kamailio_dispatcher_target_priority", "gauge", "The destination's priority"
)
WEIGHT: Final = _target(
    "kamailio_dispatcher_target_weight",
    "gauge",
    "The destination's weight attribute",
    "when the destination has attributes",
)
RWEIGHT: Final = _target(
    "kamailio_dispatcher_target_rweight",
    "gauge",
    "The destination's relative weight attribute",
    "when the destination has attributes",
)
MAXLOAD: Final = _target(
    "kamailio_dispatcher_target_maxload",
    "gauge",
    "The destination's maxload attribute",
    "when the destination has attributes",
)
LATENCY_AVG: Final = _target(
    "kamailio_dispatcher_target_latency_average_seconds",
    "gauge",
    "Average keepalive round-trip time",
    "with ds_ping_latency_stats",
)
LATENCY_STD: Final = _target(
    "kamailio_dispatcher_target_latency_stddev_seconds",
    "gauge",
    "Standard deviation of the keepalive round-trip time",
    "with ds_ping_latency_stats",
)
LATENCY_EST: Final = _target(
    "kamailio_dispatcher_target_latency_estimate_seconds",
    "gauge",
    "Estimated keepalive round-trip time (weighted average)",
    "with ds_ping_latency_stats",
)
LATENCY_MAX: Final = _target(
    "kamailio_dispatcher_target_latency_max_seconds",
    "gauge",
    "Longest keepalive round-trip time",
    "with ds_ping_latency_stats",
)
TIMEOUTS: Final = _target(
    "kamailio_dispatcher_target_ping_timeouts_total",
    "counter",
    "Keepalives that timed out",
    "with ds_ping_latency_stats",
)
DIALOG_LOAD: Final = _target(
    "kamailio_dispatcher_target_dialog_load",
    "gauge",
    "Dialogs routed to the destination",
    "with ds_hash_size",
)
FAMILIES: Final = (
    SETS,
    UP,
    STATE,
    PROBING,
    PRIORITY,
    WEIGHT,
    RWEIGHT,
    MAXLOAD,
    LATENCY_AVG,
    LATENCY_STD,
    LATENCY_EST,
    LATENCY_MAX,
    TIMEOUTS,
    DIALOG_LOAD,
)

_STATES: Final = {"A": "active", "I": "inactive", "D": "disabled", "T": "trying"}
_SELECTABLE: Final = frozenset("AT")
_ATTRS: Final = ((WEIGHT, "WEIGHT"), (RWEIGHT, "RWEIGHT"), (MAXLOAD, "MAXLOAD"))
_LATENCY: Final = (
    (LATENCY_AVG, "AVG"),
    (LATENCY_STD, "STD"),
    (LATENCY_EST, "EST"),
    (LATENCY_MAX, "MAX"),
)
_NO_SETS: Final = "No Destination Sets"


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("dispatcher.list")]


def _members(struct: Value | None, name: str, where: str) -> list[Value]:
    if not isinstance(struct, Struct):
        raise CollectorError(f"{SOURCE}: {where} is not a struct")
    return struct.getall(name)


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    reply = replies[0]
    sets = SETS.family()
    if isinstance(reply, Fault):
        if reply.message == _NO_SETS:
            sets.samples.append(((), 0))
            return [sets]
        raise fault_error(SOURCE, reply)
    root = fields(single_struct(reply, SOURCE))
    sets.samples.append(((), int_field(root, "NRSETS", SOURCE)))
    families = {info: info.family() for info in FAMILIES[1:]}
    seen: set[tuple[str, str]] = set()
    names = options.dispatcher_set_names
    for set_struct in _members(root.get("RECORDS"), "SET", "RECORDS"):
        if not isinstance(set_struct, Struct):
            raise CollectorError(f"{SOURCE}: SET is not a struct")
        set_values = fields(set_struct)
        set_id = int_field(set_values, "ID", SOURCE)
        set_label = str(set_id)
        set_name = names.get(set_id, "")
        for dest in _members(set_values.get("TARGETS"), "DEST", f"TARGETS of set {set_id}"):
            if not isinstance(dest, Struct):
                raise CollectorError(f"{SOURCE}: DEST of set {set_id} is not a struct")
            values = fields(dest)
            uri = str_field(values, "URI", SOURCE)
            if (set_label, uri) in seen:  # a URI listed twice in a set: the first one counts
                continue
            seen.add((set_label, uri))
            labels = (set_label, set_name, uri)
            flags = str_field(values, "FLAGS", SOURCE)
            state = flags[:1]
            if state not in _STATES:
                raise CollectorError(f"{SOURCE}: unknown FLAGS {shown(flags)} of {shown(uri)}")
            families[UP].samples.append((labels, 1 if state in _SELECTABLE else 0))
            state_samples = families[STATE].samples
            for letter, state_name in _STATES.items():
                state_samples.append(((*labels, state_name), 1 if letter == state else 0))
            families[PROBING].samples.append((labels, 1 if flags[1:2] == "P" else 0))
            families[PRIORITY].samples.append((labels, int_field(values, "PRIORITY", SOURCE)))
            attrs = values.get("ATTRS")
            if isinstance(attrs, Struct):
                attr_values = fields(attrs)
                for info, name in _ATTRS:
                    families[info].samples.append((labels, number_field(attr_values, name, SOURCE)))
            latency = values.get("LATENCY")
            if isinstance(latency, Struct):
                latency_values = fields(latency)
                for info, name in _LATENCY:
                    families[info].samples.append(
                        (labels, number_field(latency_values, name, SOURCE) / 1000)
                    )
                families[TIMEOUTS].samples.append(
                    (labels, number_field(latency_values, "TIMEOUT", SOURCE))
                )
            runtime = values.get("RUNTIME")
            if isinstance(runtime, Struct):
                families[DIALOG_LOAD].samples.append(
                    (labels, number_field(fields(runtime), "DLGLOAD", SOURCE))
                )
    return [sets, *nonempty(list(families.values()))]


COLLECTOR: Final = Collector(
    "dispatcher", frozenset({"dispatcher.list"}), _calls, _collect, families=FAMILIES
)
