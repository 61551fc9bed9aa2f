"""What every collector is made of, and helpers to read decoded replies.

A collector is pure: `calls` says which RPCs to send, `collect` turns their replies (decoded
values, or a Fault in place of a failed call) into metric families. No I/O happens here.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..binrpc.codec import Fault, Param, Reply, Struct, Value
from ..metrics import FamilyInfo, MetricFamily

__all__ = [
    "Call",
    "Collector",
    "CollectorError",
    "CollectorOptions",
    "Reply",
    "count",
    "fault_error",
    "fields",
    "int_field",
    "int_field_families",
    "nonempty",
    "number",
    "number_field",
    "shown",
    "single_struct",
    "str_field",
    "structs",
]


@dataclass(frozen=True, slots=True, init=False)
class Call:
    method: str
    params: tuple[Param, ...] = ()

    # Written out, not generated: compiled (mypyc), a dataclass's generated __init__ stays
    # interpreted, and every probe asks each collector for its calls.
    def __init__(self, method: str, params: tuple[Param, ...] = ()) -> None:
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "params", params)


def _no_set_names() -> Mapping[int, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CollectorOptions:
    """Per-module settings of the collectors (from the module's config)."""

    # dlg.profile_get_size is asked once per profile
    dialog_profiles: tuple[str, ...] = ()
    # dispatcher set id -> the set_name label (a read-only mapping)
    dispatcher_set_names: Mapping[int, str] = field(default_factory=_no_set_names)
    # groups asked for one by one, beside the known ones, when `stats.fetch all` overflows
    stats_groups: tuple[str, ...] = ()


class CollectorError(Exception):
    """A reply a collector cannot read: a fault where data was needed, or an unexpected shape."""


@dataclass(frozen=True)
class Collector:
    name: str
    # RPCs it needs; the probe skips it when none is in system.listMethods
    methods: frozenset[str]
    calls: Callable[[CollectorOptions], list[Call]]
    collect: Callable[[Sequence[Reply], CollectorOptions], list[MetricFamily]]
    # calls for a second round (or []): `collect` then receives the second round's replies
    fallback: Callable[[Sequence[Reply], CollectorOptions], list[Call]] | None = None
    # every family it can emit, for METRICS.md and for name reservation
    families: tuple[FamilyInfo, ...] = ()


class _ValueRepr(reprlib.Repr):
    """Bounded reprs of decoded values: long strings and bytes keep their ends, long lists and
    structs their first items, deep ones their outer levels."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = 80
        self.maxlong = 40
        self.maxlist = self.maxtuple = self.maxdict = 6

    repr_bytes = reprlib.Repr.repr_str

    def repr_Struct(self, value: Struct, level: int) -> str:  # reprlib's naming
        return f"Struct({self.repr_list(value.members, level)})"


shown = _ValueRepr().repr
"""A value's repr for an error message, bounded: a hostile Kamailio's values run to megabytes."""


def fault_error(method: str, fault: Fault) -> CollectorError:
    return CollectorError(f"{method}: FAULT {fault.code} {fault.message}")


def structs(reply: Reply, method: str) -> list[Struct]:
    """The top-level structs of a reply (one per process, node, table...)."""
    if isinstance(reply, Fault):
        raise fault_error(method, reply)
    for value in reply:
        if not isinstance(value, Struct):
            raise CollectorError(f"{method}: expected structs, got a {type(value).__name__}")
    return reply  # type: ignore[return-value]  # every item checked above


def single_struct(reply: Reply, method: str) -> Struct:
    found = structs(reply, method)
    if len(found) != 1:
        raise CollectorError(f"{method}: expected one struct, got {len(found)} values")
    return found[0]


def fields(struct: Struct) -> dict[str | None, Value]:
    """Members by name, for structs whose names do not repeat (the last would win)."""
    return dict(struct.members)


def int_field(values: Mapping[str | None, Value], name: str, method: str) -> int:
    value = values.get(name)
    if type(value) is not int:
        raise CollectorError(f"{method}: field {name!r} is not an INT ({shown(value)})")
    return value


def str_field(values: Mapping[str | None, Value], name: str, method: str) -> str:
    value = values.get(name)
    if type(value) is not str:
        raise CollectorError(f"{method}: field {name!r} is not a STR ({shown(value)})")
    return value


def number(value: Value | None, name: str, method: str) -> int | float:
    """A numeric field as an INT or as a DOUBLE: Kamailio has widened fields from INT to DOUBLE
    (5.7 `core.shmmem` and `sl.stats`, 6.0 `uac.reg_dump` expires and reg_init), so every
    numeric field accepts both. A whole DOUBLE reads as an int."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return int(value) if value.is_integer() else value
    raise CollectorError(f"{method}: field {name!r} is not a number ({shown(value)})")


def number_field(values: Mapping[str | None, Value], name: str, method: str) -> int | float:
    return number(values.get(name), name, method)


def count(value: Value | None, name: str, method: str) -> int:
    """An unsigned count: a 32-bit INT (≤5.6, read as unsigned) or a DOUBLE (5.7+ `j`)."""
    if type(value) is int:
        return value & 0xFFFFFFFF
    return int(number(value, name, method))


def int_field_families(
    reply: Reply, method: str, field_families: Sequence[tuple[FamilyInfo, str]]
) -> list[MetricFamily]:
    """One unlabelled family per INT field of a reply that is a single struct."""
    values = fields(single_struct(reply, method))
    families = []
    for info, name in field_families:
        family = info.family()
        family.samples.append(((), int_field(values, name, method)))
        families.append(family)
    return families


def nonempty(families: Sequence[MetricFamily]) -> list[MetricFamily]:
    return [family for family in families if family.samples]
