"""htable.stats: size and fill of each hash table of the htable module."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..binrpc.codec import Fault
from ..metrics import FamilyInfo, MetricFamily
from .base import (
    Call,
    Collector,
    CollectorOptions,
    Reply,
    count,
    fault_error,
    fields,
    nonempty,
    str_field,
    structs,
)

SOURCE: Final = "htable.stats"
LABELS: Final = ("table",)
SLOTS: Final = FamilyInfo("kamailio_htable_slots", "gauge", "Slots of a hash table", LABELS, SOURCE)
ITEMS: Final = FamilyInfo("kamailio_htable_items", "gauge", "Items in a hash table", LABELS, SOURCE)
SLOT_MIN: Final = FamilyInfo(
    "kamailio_htable_slot_items_min",
    "gauge",
    "Items in the emptiest slot of a hash table",
    LABELS,
    SOURCE,
)
SLOT_MAX: Final = FamilyInfo(
    "kamailio_htable_slot_items_max",
    "gauge",
    "Items in the fullest slot of a hash table",
    LABELS,
    SOURCE,
)
FAMILIES: Final = (SLOTS, ITEMS, SLOT_MIN, SLOT_MAX)
_FIELDS: Final = ((SLOTS, "slots"), (ITEMS, "all"), (SLOT_MIN, "min"), (SLOT_MAX, "max"))
_NO_TABLES: Final = "No htables"


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("htable.stats")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    reply = replies[0]
    if isinstance(reply, Fault):
        if reply.message == _NO_TABLES:
            return []
        raise fault_error(SOURCE, reply)
    families = [info.family() for info, _ in _FIELDS]
    seen: set[str] = set()
    for struct in structs(reply, SOURCE):
        values = fields(struct)
        table = str_field(values, "name", SOURCE)
        if table in seen:
            continue
        seen.add(table)
        for family, (_, field) in zip(families, _FIELDS, strict=True):
            family.samples.append(((table,), count(values.get(field), field, SOURCE)))
    return nonempty(families)


COLLECTOR: Final = Collector(
    "htable", frozenset({"htable.stats"}), _calls, _collect, families=FAMILIES
)
