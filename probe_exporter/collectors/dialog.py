"""dlg.stats_active and dlg.profile_get_size: dialogs by state, and per dialog profile.

The names of the dlg.stats_active families are those of the voiplens and florentchauveau
exporters. dlg.profile_get_size is asked once per profile of the module's options.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ..binrpc.codec import Fault
from ..metrics import FamilyInfo, MetricFamily
from .base import (
    Call,
    Collector,
    CollectorError,
    CollectorOptions,
    Reply,
    int_field_families,
    shown,
)

SOURCE: Final = "dlg.stats_active"


def _state(field: str, help_: str) -> FamilyInfo:
    return FamilyInfo(f"kamailio_dlg_stats_active_{field}", "gauge", help_, (), SOURCE)


STARTING: Final = _state("starting", "Dialogs not confirmed yet (no reply)")
CONNECTING: Final = _state("connecting", "Dialogs in the early state (provisional reply)")
ANSWERING: Final = _state("answering", "Dialogs answered but not acknowledged")
ONGOING: Final = _state("ongoing", "Dialogs confirmed (answered and acknowledged)")
ALL: Final = _state("all", "Dialogs in any of these states")
PROFILE_SIZE: Final = FamilyInfo(
    "kamailio_dlg_profile_size",
    "gauge",
    "Dialogs in a dialog profile",
    ("profile",),
    "dlg.profile_get_size <profile>",
    "one RPC per profile listed in the module's options",
)
FAMILIES: Final = (STARTING, CONNECTING, ANSWERING, ONGOING, ALL, PROFILE_SIZE)
_FIELDS: Final = (
    (STARTING, "starting"),
    (CONNECTING, "connecting"),
    (ANSWERING, "answering"),
    (ONGOING, "ongoing"),
    (ALL, "all"),
)


def _calls(options: CollectorOptions) -> list[Call]:
    return [
        Call("dlg.stats_active"),
        *(Call("dlg.profile_get_size", (profile,)) for profile in options.dialog_profiles),
    ]


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    families = int_field_families(replies[0], SOURCE, _FIELDS)
    sizes = PROFILE_SIZE.family()
    for profile, reply in zip(options.dialog_profiles, replies[1:], strict=True):
        method = f"dlg.profile_get_size {profile}"
        if isinstance(reply, Fault):
            # 404 for a profile Kamailio's config does not declare: that profile has no series,
            # and the dialog counts stay (one misnamed profile must not hide them).
            continue
        if len(reply) != 1 or type(reply[0]) is not int:
            raise CollectorError(f"{method}: expected one INT, got {shown(reply)}")
        sizes.samples.append(((profile,), reply[0] & 0xFFFFFFFF))
    if sizes.samples:
        families.append(sizes)
    return families


COLLECTOR: Final = Collector(
    "dialog", frozenset({"dlg.stats_active"}), _calls, _collect, families=FAMILIES
)
