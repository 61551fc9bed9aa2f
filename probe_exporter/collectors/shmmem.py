"""core.shmmem: shared memory, for a Kamailio without kex (whose `shmem` statistics group the
stats collector exports as kamailio_shm_bytes with the same values).

Up to 5.6 the fields are 32-bit INTs (Kamailio casts them to unsigned int): read modulo 2^32,
they are right below 4 GiB and wrap above. From 5.7 they are DOUBLEs, exact.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, count, fields, single_struct

SOURCE = "core.shmmem"
BYTES = FamilyInfo(
    "kamailio_core_shmmem_bytes",
    "gauge",
    "Shared memory sizes (core.shmmem)",
    ("type",),
    SOURCE,
    "the values of kamailio_shm_bytes; up to 5.6 they wrap at 4 GiB",
)
FRAGMENTS = FamilyInfo(
    "kamailio_core_shmmem_fragments",
    "gauge",
    "Shared memory fragment count (core.shmmem)",
    (),
    SOURCE,
)
FAMILIES = (BYTES, FRAGMENTS)
_TYPES = ("free", "max_used", "real_used", "total", "used")


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("core.shmmem")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    values = fields(single_struct(replies[0], SOURCE))
    sizes = BYTES.family()
    for kind in _TYPES:
        sizes.samples.append(((kind,), count(values.get(kind), kind, SOURCE)))
    fragments = FRAGMENTS.family()
    fragments.samples.append(((), count(values.get("fragments"), "fragments", SOURCE)))
    return [sizes, fragments]


COLLECTOR = Collector("shmmem", frozenset({"core.shmmem"}), _calls, _collect, families=FAMILIES)
