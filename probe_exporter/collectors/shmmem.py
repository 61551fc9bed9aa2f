"""core.shmmem: shared memory, for a Kamailio without kex (whose `shmem` statistics group the
stats collector exports as kamailio_shm_bytes with the same values).

Up to 5.6 the fields are 32-bit INTs (Kamailio casts them to unsigned int): read modulo 2^32,
they wrap above 4 GiB. `stats.fetch shmem:` (kex), sent in the same round, carries the exact
values as decimal strings: where it answers, its values replace the INTs. Without kex a 5.6
reply above 4 GiB stays wrapped. From 5.7 the fields are DOUBLEs, exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..binrpc.codec import Fault, Struct
from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, count, fields, single_struct

SOURCE: Final = "core.shmmem"
BYTES: Final = FamilyInfo(
    "kamailio_core_shmmem_bytes",
    "gauge",
    "Shared memory sizes (core.shmmem)",
    ("type",),
    SOURCE,
    "the values of kamailio_shm_bytes; up to 5.6 without kex they wrap at 4 GiB (with kex the "
    "exact values of `stats.fetch shmem:` are used)",
)
FRAGMENTS: Final = FamilyInfo(
    "kamailio_core_shmmem_fragments",
    "gauge",
    "Shared memory fragment count (core.shmmem)",
    (),
    SOURCE,
)
FAMILIES: Final = (BYTES, FRAGMENTS)
_TYPES: Final = ("free", "max_used", "real_used", "total", "used")
# core.shmmem field -> its statistic in the shmem group
_STATISTICS: Final = {
    "free": "shmem.free_size",
    "max_used": "shmem.max_used_size",
    "real_used": "shmem.real_used_size",
    "total": "shmem.total_size",
    "used": "shmem.used_size",
    "fragments": "shmem.fragments",
}


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("core.shmmem"), Call("stats.fetch", ("shmem:",))]


def _exact(reply: Reply) -> dict[str, int]:
    """The shmem statistics that are decimal strings (none when kex is not loaded)."""
    if isinstance(reply, Fault) or len(reply) != 1 or not isinstance(reply[0], Struct):
        return {}
    return {
        name: int(value)
        for name, value in reply[0].members
        if name is not None and isinstance(value, str) and value.isdigit()
    }


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    values = fields(single_struct(replies[0], SOURCE))
    exact = _exact(replies[1])

    def read(kind: str) -> int:
        value = values.get(kind)
        if type(value) is int and _STATISTICS[kind] in exact:  # a 32-bit INT (≤5.6)
            return exact[_STATISTICS[kind]]
        return count(value, kind, SOURCE)

    sizes = BYTES.family()
    for kind in _TYPES:
        sizes.samples.append(((kind,), read(kind)))
    fragments = FRAGMENTS.family()
    fragments.samples.append(((), read("fragments")))
    return [sizes, fragments]


COLLECTOR: Final = Collector(
    "shmmem", frozenset({"core.shmmem"}), _calls, _collect, families=FAMILIES
)
