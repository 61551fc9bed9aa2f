"""The families every probe emits, whatever its collectors (documented in METRICS.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from .metrics import FamilyInfo, MetricFamily

STAGES = ("resolve", "connect", "rpc", "decode", "limit", "timeout")

UP = FamilyInfo(
    "kamailio_up",
    "gauge",
    "Whether Kamailio answered the probe's RPCs (1) or not (0).",
    (),
    "probe",
)
DURATION = FamilyInfo(
    "kamailio_probe_duration_seconds", "gauge", "How long the probe took, in seconds.", (), "probe"
)
TIMEOUT = FamilyInfo(
    "kamailio_probe_timeout_seconds",
    "gauge",
    "The probe's deadline in seconds (module or target timeout, or the scrape "
    "timeout less the offset).",
    (),
    "probe",
)
FAILURE = FamilyInfo(
    "kamailio_probe_failure_info",
    "gauge",
    "The stage at which a failed probe failed: resolve, connect, rpc, decode, limit or timeout.",
    ("stage",),
    "probe",
)
COLLECTOR_SUCCESS = FamilyInfo(
    "kamailio_exporter_collector_success",
    "gauge",
    "Whether a collector succeeded (1) or failed (0) in this probe.",
    ("collector",),
    "probe",
)
COLLECTOR_DURATION = FamilyInfo(
    "kamailio_exporter_collector_duration_seconds",
    "gauge",
    "Seconds from the start of the probe's RPCs until the "
    "collector's replies were in and turned into metrics.",
    ("collector",),
    "probe",
)
MERGED_DUPLICATES = FamilyInfo(
    "kamailio_exporter_merged_duplicates",
    "gauge",
    "Samples dropped from a merged HTTP source because the exporter emits or reserves their "
    "name, another family of the probe's sources has it, or their series repeats.",
    ("source",),
    "probe",
)
INVALID_VALUES = FamilyInfo(
    "kamailio_exporter_invalid_values",
    "gauge",
    "Samples dropped because Prometheus cannot take their value (out of a float's range, a "
    "negative or NaN counter...), by collector or merged source.",
    ("collector",),
    "probe",
    "only collectors and sources that dropped any; the stats collector counts statistics "
    "that are not a %lu number in kamailio_exporter_stats_dropped",
)
DUPLICATE_SERIES = FamilyInfo(
    "kamailio_exporter_duplicate_series",
    "gauge",
    "Samples dropped because their series (name and labels) repeats one of the collector's.",
    ("collector",),
    "probe",
    "only collectors that dropped any",
)
PROBE_FAMILIES = (
    UP,
    DURATION,
    TIMEOUT,
    FAILURE,
    COLLECTOR_SUCCESS,
    COLLECTOR_DURATION,
    MERGED_DUPLICATES,
    INVALID_VALUES,
    DUPLICATE_SERIES,
)
_NONE: Mapping[str, int] = MappingProxyType({})


def probe_families(
    stage: str | None,
    duration: float,
    timeout: float,
    outcomes: Sequence[tuple[str, bool, float]],
    merged_duplicates: Mapping[str, int],
    invalid_values: Mapping[str, int] = _NONE,
    duplicate_series: Mapping[str, int] = _NONE,
) -> list[MetricFamily]:
    (
        up,
        duration_f,
        timeout_f,
        failure,
        success,
        collector_duration,
        duplicates,
        invalid,
        repeated,
    ) = (info.family() for info in PROBE_FAMILIES)
    up.add((), 0.0 if stage else 1.0)
    duration_f.add((), duration)
    timeout_f.add((), timeout)
    result = [up, duration_f, timeout_f]
    if stage:
        failure.add((stage,), 1.0)
        result.append(failure)
    if outcomes:
        for name, ok, seconds in outcomes:
            success.add((name,), 1.0 if ok else 0.0)
            collector_duration.add((name,), seconds)
        result += [success, collector_duration]
    if merged_duplicates:
        for source, count in merged_duplicates.items():
            duplicates.add((source,), float(count))
        result.append(duplicates)
    for family, counts in ((invalid, invalid_values), (repeated, duplicate_series)):
        if counts:
            family.samples += [((name,), count) for name, count in counts.items()]
            result.append(family)
    return result
