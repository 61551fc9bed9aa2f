"""Merging a scraped exposition (Kamailio's xhttp_prom, rtpengine's /metrics) into a probe's
families.

The text is parsed with prometheus_client's text-format parser; timestamps are dropped (the
probe's samples are all "now"). A family with a name the probe already emits in text format
0.0.4 is dropped and its samples counted, as is a series that repeats. A family whose names
clash with another's only in OpenMetrics (rtpengine's gauge `rtpengine_sessions` and counter
`rtpengine_sessions_total`) is kept for text 0.0.4 only. The parser splits a family whose
samples are not contiguous (rtpengine interleaves `rtpengine_requests_total` and
`rtpengine_request_seconds_total`) into pieces: they are joined again. Counters are named with
`_total`, as the parser names their samples. Histograms and summaries stay histograms and
summaries, their `le`/`quantile` values written canonically (xhttp_prom prints
`le="0.500000"`, which OpenMetrics rejects).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ..exposition import format_value
from ..metrics import SUFFIXED_TYPES, MetricFamily, MetricType, exposed_names, text_names

__all__ = ["MergeError", "merge_exposition"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_KEPT_TYPES: dict[str, MetricType] = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
}
# sample name suffixes per family type
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
# the suffix whose samples carry the type's extra label (le, quantile)
_EXTRA_SUFFIX = {"histogram": "_bucket", "summary": ""}


class MergeError(ValueError):
    """The text is not a Prometheus text-format exposition we can merge."""


class _Family:
    """A family being gathered: its samples as (suffix, labels, value)."""

    __slots__ = ("help", "name", "samples", "series", "text_format_only", "type")

    def __init__(self, name: str, type_: MetricType, help_: str, text_format_only: bool) -> None:
        self.name = name
        self.type = type_
        self.help = help_
        self.text_format_only = text_format_only
        self.samples: list[tuple[str, dict[str, str], float]] = []
        self.series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def suffix_of(self, sample_name: str) -> str | None:
        """The sample's suffix in this family, None when it is not one of its samples."""
        if not sample_name.startswith(self.name):
            return None
        suffix = sample_name[len(self.name) :]
        return suffix if suffix in _SUFFIXES.get(self.type, ("",)) else None

    def add(self, suffix: str, labels: dict[str, str], value: float) -> bool:
        """False when the series is already there."""
        extra = SUFFIXED_TYPES.get(self.type)
        if extra is not None:
            if suffix == _EXTRA_SUFFIX[self.type]:
                if extra not in labels:
                    raise MergeError(f"{self.name}{suffix}: a sample without {extra}")
                labels[extra] = _canonical(labels[extra], extra, self.name)
            else:
                labels.pop(extra, None)
        series = (suffix, tuple(sorted(labels.items())))
        if series in self.series:
            return False
        self.series.add(series)
        self.samples.append((suffix, labels, value))
        return True

    def build(self) -> MetricFamily:
        extra = SUFFIXED_TYPES.get(self.type)
        names: dict[str, None] = {}
        for _, labels, _ in self.samples:
            names.update(dict.fromkeys(labels))
        if extra is not None:
            names.pop(extra, None)
        labelnames = (*names, extra) if extra is not None else tuple(names)
        family = MetricFamily(
            self.name, self.type, self.help, labelnames, text_format_only=self.text_format_only
        )
        family.samples = [
            (tuple(labels.get(name, "") for name in labelnames), value)
            for _, labels, value in self.samples
        ]
        if extra is not None:
            family.suffixes = [suffix for suffix, _, _ in self.samples]
        return family


def _canonical(number: str, label: str, family: str) -> str:
    try:
        return format_value(float(number))
    except ValueError:
        raise MergeError(f"{family}: {label}={number!r} is not a number") from None


def _check_names(name: str, labels: Iterable[str]) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise MergeError(f"metric name {name!r} is not valid in text format 0.0.4")
    for label in labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise MergeError(f"{name}: label name {label!r} is not valid")


def parse_exposition(text: str) -> list[Metric]:
    """Parses text format 0.0.4: the costly half of a merge, which the probe runs off the
    event loop. Raises MergeError on text that does not parse."""
    try:
        return list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError, IndexError, TypeError...
        raise MergeError(f"cannot parse the exposition text: {type(exc).__name__}: {exc}") from exc


def merge_exposition(ours: Iterable[MetricFamily], text: str) -> tuple[list[MetricFamily], int]:
    """The families of `text` the exporter does not emit yet, and how many samples were dropped.

    `ours` are the families already in the probe's output. Raises MergeError on text that
    does not parse or whose names cannot be rendered.
    """
    return merge_parsed(ours, parse_exposition(text))


def merge_parsed(
    ours: Iterable[MetricFamily], parsed: Iterable[Metric]
) -> tuple[list[MetricFamily], int]:
    """merge_exposition for text already parsed by parse_exposition."""
    # names taken in text 0.0.4, and in OpenMetrics, by our families then the merged ones
    text_taken: set[str] = set()
    om_taken: set[str] = set()
    for known in ours:
        text_taken.update(text_names(known.name, known.type))
        if not known.text_format_only:
            om_taken.update(exposed_names(known.name, known.type))
    gathered: dict[str, _Family] = {}
    owners: dict[str, _Family] = {}  # text-format sample names of gathered families
    dropped = 0

    def new_family(name: str, type_: MetricType, help_: str) -> _Family | None:
        """A new family, or None when one of its names is taken.

        A family whose names clash only in OpenMetrics (rtpengine's gauge `rtpengine_sessions`
        and counter `rtpengine_sessions_total`) is kept for text 0.0.4 only.
        """
        names = text_names(name, type_)
        if any(n in text_taken for n in names):
            return None
        om_names = exposed_names(name, type_)
        text_only = any(n in om_taken for n in om_names)
        family = gathered[name] = _Family(name, type_, help_, text_only)
        text_taken.update(names)
        owners.update(dict.fromkeys(names, family))
        if not text_only:
            om_taken.update(om_names)
        return family

    for metric in parsed:
        type_ = _KEPT_TYPES.get(metric.type)
        typed: _Family | None = None
        if type_ is not None:
            name = metric.name + "_total" if type_ == "counter" else metric.name
            typed = gathered.get(name)
            if typed is None or typed.type != type_:
                typed = new_family(name, type_, metric.documentation)
        for sample in metric.samples:
            _check_names(sample.name, sample.labels)
            if type_ is not None:
                family = typed  # None: the family is ours or clashes with an earlier one
            else:  # untyped: a family of its own, or a stray piece of one seen before
                family = owners.get(sample.name)
                if family is None:
                    family = new_family(sample.name, "untyped", metric.documentation)
            suffix = family.suffix_of(sample.name) if family is not None else None
            if (
                family is None
                or suffix is None
                or not family.add(suffix, dict(sample.labels), sample.value)
            ):
                dropped += 1
    return [family.build() for family in gathered.values() if family.samples], dropped
