"""core.uptime, core.version and core.info: uptime, start time and build of Kamailio (core)."""

from __future__ import annotations

import math
import re
import time
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
    fault_error,
    fields,
    int_field,
    shown,
    single_struct,
    str_field,
)

UPTIME: Final = FamilyInfo(
    "kamailio_uptime_seconds", "gauge", "Seconds since Kamailio started", (), "core.uptime"
)
START_TIME: Final = FamilyInfo(
    "kamailio_start_time_seconds",
    "gauge",
    "When Kamailio started, in seconds since the Unix epoch",
    (),
    "core.uptime",
    "the exporter's clock less the uptime: Kamailio's own start time is a local-time string",
)
BUILD_INFO: Final = FamilyInfo(
    "kamailio_build_info",
    "gauge",
    "Kamailio's version and build, as labels (always 1)",
    ("version", "arch", "os", "revision", "compiler", "compiled"),
    "core.version, core.info",
    "revision is empty for builds outside git; os in lower case (6.1 says `Linux`, earlier "
    "versions `linux`)",
)
FAMILIES: Final = (UPTIME, START_TIME, BUILD_INFO)

# "kamailio 5.6.3 (x86_64/linux) 4e9a2c": name, version, arch, os, revision (may be empty)
_VERSION: Final = re.compile(r"(\S+) (\S+) \(([^/]+)/([^)]+)\)\s*(\S*)")

# The exporter's clock (tests replace it).
wall_clock = time.time


def _calls(options: CollectorOptions) -> list[Call]:
    return [Call("core.uptime"), Call("core.version"), Call("core.info")]


def _version(reply: Reply) -> tuple[str, str, str, str]:
    if isinstance(reply, Fault):
        raise fault_error("core.version", reply)
    text = reply[0] if len(reply) == 1 else None
    match = _VERSION.match(text) if isinstance(text, str) else None
    if match is None:
        raise CollectorError(f"core.version: unexpected reply {shown(reply)}")
    # Dashboards match on os: its case must not change with a Kamailio upgrade.
    return match.group(2), match.group(3), match.group(4).lower(), match.group(5)


def _collect(replies: Sequence[Reply], options: CollectorOptions) -> list[MetricFamily]:
    uptime_reply, version_reply, info_reply = replies
    uptime = int_field(fields(single_struct(uptime_reply, "core.uptime")), "uptime", "core.uptime")
    info = fields(single_struct(info_reply, "core.info"))
    uptime_family = UPTIME.family()
    uptime_family.samples.append(((), uptime))
    start = START_TIME.family()
    start.samples.append(((), math.floor(wall_clock()) - uptime))
    build = BUILD_INFO.family()
    build.samples.append(
        (
            (
                *_version(version_reply),
                str_field(info, "compiler", "core.info").strip(),
                str_field(info, "compiled", "core.info").strip(),
            ),
            1,
        )
    )
    return [uptime_family, start, build]


COLLECTOR: Final = Collector(
    "core",
    frozenset({"core.uptime", "core.version", "core.info"}),
    _calls,
    _collect,
    families=FAMILIES,
)
