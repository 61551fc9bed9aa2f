"""uac.reg_dump: the uac module's outbound registrations, registered or not, per remote.

`flags` bits: 1 disabled, 2 ongoing, 4 online (registered), 8 auth sent, 16 initialised.
`expires` is an INT up to 5.6 and a DOUBLE from 6.0. The password fields are never read.
"""

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
    fault_error,
    fields,
    int_field,
    nonempty,
    number_field,
    str_field,
    structs,
)

SOURCE: Final = "uac.reg_dump"
LABELS: Final = ("l_uuid", "r_username", "r_domain")
REGISTERED: Final = FamilyInfo(
    "kamailio_uac_registration_registered",
    "gauge",
    "1 when the outbound registration is registered",
    LABELS,
    SOURCE,
)
STATE: Final = FamilyInfo(
    "kamailio_uac_registration_state",
    "gauge",
    "The outbound registration's state: one series per state, 1 for the current one",
    (*LABELS, "state"),
    SOURCE,
    "state: registered, registering, failed (neither registered nor in progress: rejected, "
    "unanswered or not attempted yet), disabled",
)
EXPIRES: Final = FamilyInfo(
    "kamailio_uac_registration_expires_seconds",
    "gauge",
    "The expires interval the registration asks for",
    LABELS,
    SOURCE,
)
FAMILIES: Final = (REGISTERED, STATE, EXPIRES)
_DISABLED, _ONGOING, _ONLINE, _AUTHSENT = 1, 2, 4, 8
_STATES: Final = ("registered", "registering", "failed", "disabled")
_NOT_ENABLED: Final = "Not enabled"  # uac loaded without a registrations table


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("uac.reg_dump")]


def _state(flags: int) -> str:
    if flags & _DISABLED:
        return "disabled"
    if flags & _ONLINE:
        return "registered"
    if flags & (_ONGOING | _AUTHSENT):
        return "registering"
    return "failed"


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    reply = replies[0]
    if isinstance(reply, Fault):
        if reply.message == _NOT_ENABLED:
            return []
        raise fault_error(SOURCE, reply)
    registered, state, expires = (info.family() for info in FAMILIES)
    seen: set[str] = set()
    for struct in structs(reply, SOURCE):
        values = fields(struct)
        uuid = str_field(values, "l_uuid", SOURCE)
        if uuid in seen:
            continue
        seen.add(uuid)
        labels = (
            uuid,
            str_field(values, "r_username", SOURCE),
            str_field(values, "r_domain", SOURCE),
        )
        current = _state(int_field(values, "flags", SOURCE))
        registered.samples.append((labels, 1 if current == "registered" else 0))
        for name in _STATES:
            state.samples.append(((*labels, name), 1 if current == name else 0))
        expires.samples.append((labels, number_field(values, "expires", SOURCE)))
    return nonempty([registered, state, expires])


COLLECTOR: Final = Collector(
    "uac", frozenset({"uac.reg_dump"}), _calls, _collect, families=FAMILIES
)
