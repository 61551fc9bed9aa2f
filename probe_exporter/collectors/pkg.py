"""pkg.stats: private (pkg) memory of each Kamailio process (kex).

One struct per process-table slot. The unsigned fields travel as 32-bit INTs, so they are
read modulo 2^32 (values above 4 GiB are already truncated by Kamailio).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..metrics import FamilyInfo, MetricFamily
from .base import (
    Call,
    Collector,
    CollectorError,
    CollectorOptions,
    Reply,
    fields,
    int_field,
    structs,
)

SOURCE: Final = "pkg.stats"
LABELS: Final = ("entry",)

USED: Final = FamilyInfo(
    "kamailio_pkgmem_used", "gauge", "Private memory used", LABELS, SOURCE, "seed"
)
FREE: Final = FamilyInfo(
    "kamailio_pkgmem_free", "gauge", "Private memory free", LABELS, SOURCE, "seed"
)
REAL: Final = FamilyInfo(
    "kamailio_pkgmem_real", "gauge", "Private memory real used", LABELS, SOURCE, "seed"
)
SIZE: Final = FamilyInfo(
    "kamailio_pkgmem_size", "gauge", "Private memory total size", LABELS, SOURCE, "seed"
)
FRAGS: Final = FamilyInfo(
    "kamailio_pkgmem_frags", "gauge", "Private memory total frags", LABELS, SOURCE, "seed"
)
PROCESS_INFO: Final = FamilyInfo(
    "kamailio_pkgmem_process_info",
    "gauge",
    "The process behind a pkg memory entry: pid, rank (0 main, -1 timer, -2 ctl, >0 SIP "
    "workers...) and description",
    ("entry", "pid", "rank", "desc"),
    SOURCE,
    "desc is empty before Kamailio 5.4",
)
FAMILIES: Final = (USED, FREE, REAL, SIZE, FRAGS, PROCESS_INFO)
_MEMORY: Final = (
    (USED, "used"),
    (FREE, "free"),
    (REAL, "real_used"),
    (SIZE, "total_size"),
    (FRAGS, "total_frags"),
)


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("pkg.stats")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    families = [info.family() for info, _ in _MEMORY]
    process_info = PROCESS_INFO.family()
    entries: set[str] = set()
    for struct in structs(replies[0], SOURCE):
        values = fields(struct)
        entry = str(int_field(values, "entry", SOURCE))
        if entry in entries:
            raise CollectorError(f"{SOURCE}: entry {entry} appears twice")
        entries.add(entry)
        labels = (entry,)
        for family, (_, field) in zip(families, _MEMORY, strict=True):
            family.samples.append((labels, int_field(values, field, SOURCE) & 0xFFFFFFFF))
        desc = values.get("desc", "")
        process_info.samples.append(
            (
                (
                    entry,
                    str(int_field(values, "pid", SOURCE) & 0xFFFFFFFF),
                    str(int_field(values, "rank", SOURCE)),
                    desc if isinstance(desc, str) else "",
                ),
                1,
            )
        )
    families.append(process_info)
    return [family for family in families if family.samples]


COLLECTOR: Final = Collector("pkg", frozenset({"pkg.stats"}), _calls, _collect, families=FAMILIES)
