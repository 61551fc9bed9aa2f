"""tm.stats: transaction counts of the tm module (names as in the voiplens exporter, but for
kamailio_tm_stats_transactions_total: voiplens' kamailio_tm_stats_total clashes in OpenMetrics
with kamailio_tm_stats_created_total).

The fields are unsigned ints truncated to 32 bits, read modulo 2^32; created, freed and
delayed_free exist only in builds with TM_MORE_STATS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..metrics import FamilyInfo, MetricFamily, MetricType
from .base import Call, Collector, CollectorOptions, Reply, count, fields, nonempty, single_struct

SOURCE: Final = "tm.stats"


def _info(name: str, type_: MetricType, help_: str, labels: tuple[str, ...] = ()) -> FamilyInfo:
    return FamilyInfo(name, type_, help_, labels, SOURCE)


CURRENT: Final = _info("kamailio_tm_stats_current", "gauge", "Transactions in memory")
WAITING: Final = _info("kamailio_tm_stats_waiting", "gauge", "Transactions in the wait state")
TOTAL: Final = _info("kamailio_tm_stats_transactions_total", "counter", "Transactions created")
LOCAL: Final = _info("kamailio_tm_stats_local_total", "counter", "Transactions created locally")
RPL_RECEIVED: Final = _info("kamailio_tm_stats_rpl_received_total", "counter", "Replies received")
RPL_GENERATED: Final = _info(
    "kamailio_tm_stats_rpl_generated_total", "counter", "Replies generated locally"
)
RPL_SENT: Final = _info("kamailio_tm_stats_rpl_sent_total", "counter", "Replies sent")
CODES: Final = _info(
    "kamailio_tm_stats_codes_total",
    "counter",
    "Transactions completed by final reply class",
    ("code",),
)
CREATED: Final = _info("kamailio_tm_stats_created_total", "counter", "Transaction cells created")
FREED: Final = _info("kamailio_tm_stats_freed_total", "counter", "Transaction cells freed")
DELAYED_FREE: Final = _info(
    "kamailio_tm_stats_delayed_free_total", "counter", "Transaction cells freed with a delay"
)
FAMILIES: Final = (
    CURRENT,
    WAITING,
    TOTAL,
    LOCAL,
    RPL_RECEIVED,
    RPL_GENERATED,
    RPL_SENT,
    CODES,
    CREATED,
    FREED,
    DELAYED_FREE,
)
_FIELDS: Final = (
    (CURRENT, "current"),
    (WAITING, "waiting"),
    (TOTAL, "total"),
    (LOCAL, "total_local"),
    (RPL_RECEIVED, "rpl_received"),
    (RPL_GENERATED, "rpl_generated"),
    (RPL_SENT, "rpl_sent"),
)
_OPTIONAL: Final = ((CREATED, "created"), (FREED, "freed"), (DELAYED_FREE, "delayed_free"))
_CODES: Final = ("2xx", "3xx", "4xx", "5xx", "6xx")


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("tm.stats")]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    values = fields(single_struct(replies[0], SOURCE))
    families = []
    for info, field in _FIELDS:
        family = info.family()
        family.samples.append(((), count(values.get(field), field, SOURCE)))
        families.append(family)
    codes = CODES.family()
    for code in _CODES:
        codes.samples.append(((code,), count(values.get(code), code, SOURCE)))
    families.append(codes)
    for info, field in _OPTIONAL:
        family = info.family()
        if field in values:
            family.samples.append(((), count(values[field], field, SOURCE)))
        families.append(family)
    return nonempty(families)


COLLECTOR: Final = Collector("tm", frozenset({"tm.stats"}), _calls, _collect, families=FAMILIES)
