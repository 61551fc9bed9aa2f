"""sl.stats: replies sent statelessly, by code (sl module; name as in the voiplens exporter).

INTs up to 5.6 (read as unsigned 32-bit), DOUBLEs from 5.7; 5.0-5.4 have no `3xx`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..metrics import FamilyInfo, MetricFamily
from .base import Call, Collector, CollectorOptions, Reply, count, nonempty, single_struct

SOURCE: Final = "sl.stats"
CODES: Final = FamilyInfo(
    "kamailio_sl_stats_codes_total",
    "counter",
    "Replies sent statelessly by code",
    ("code",),
    SOURCE,
    "the data of kamailio_sl_reply_total (statistics), without kex",
)
FAMILIES: Final = (CODES,)


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("sl.stats")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    codes = CODES.family()
    for code, value in single_struct(replies[0], SOURCE).members:
        if code is not None and len(code) == 3:
            codes.samples.append(((code,), count(value, code, SOURCE)))
    return nonempty([codes])


COLLECTOR: Final = Collector("sl", frozenset({"sl.stats"}), _calls, _collect, families=FAMILIES)
