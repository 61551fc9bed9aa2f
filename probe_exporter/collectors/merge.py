"""Merging a scraped exposition (Kamailio's xhttp_prom, rtpengine's /metrics) into a probe's
families.

The text is parsed with prometheus_client's text-format parser; timestamps are dropped (the
probe's samples are all "now"). Every sample keeps the name the source gives it, in text 0.0.4
and in OpenMetrics, so that Prometheus stores it under that name whatever format it asks for:
a counter whose name has no `_total` (which OpenMetrics would add) is merged untyped.

A family is dropped and its samples counted when one of its names (in either format) is one the
exporter emits in this probe or reserves (`is_reserved`: any collector's, the probe's own), or
one an earlier family of the probe's merged sources took. A counter whose OpenMetrics family
name another merged family has (rtpengine's gauge `rtpengine_sessions` and counter
`rtpengine_sessions_total`) is an `unknown` family in OpenMetrics. Repeated series (`m{a=""}`
is `m`) and values Prometheus cannot take are dropped and counted by `drop_bad_samples`, as
are histogram groups that OpenMetrics would reject (no +Inf bucket, buckets that decrease...).

The parser splits a family whose samples are not contiguous (rtpengine interleaves
`rtpengine_requests_total` and `rtpengine_request_seconds_total`) into pieces: they are joined
again. Histograms and summaries stay histograms and summaries, their `le`/`quantile` values
written canonically (xhttp_prom prints `le="0.500000"`, which OpenMetrics rejects) and their
samples grouped by series. Each family's HELP says which source it came from.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from typing import NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ..exposition import format_value
from ..metrics import (
    SUFFIXED_TYPES,
    MetricFamily,
    MetricType,
    drop_bad_samples,
    exposed_names,
    text_names,
)
from . import is_reserved
from .base import shown

__all__ = ["MergeError", "Merged", "merge_exposition", "merge_parsed", "parse_exposition"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# A TYPE line of a counter whose name has no `_total`, as the parser reads it (a stripped line
# split on whitespace): its samples are merged untyped, under their own name.
_COUNTER_WITHOUT_TOTAL = re.compile(
    r"^([^\S\n]*#[^\S\n]+TYPE[^\S\n]+)(\S*?)(?<!_total)([^\S\n]+)counter([^\S\n]*)$", re.MULTILINE
)
_KEPT_TYPES: dict[str, MetricType] = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
}
# sample name suffixes per family type, in the order they are written within a series
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
# the suffix whose samples carry the type's extra label (le, quantile)
_EXTRA_SUFFIX = {"histogram": "_bucket", "summary": ""}


class MergeError(ValueError):
    """The text is not a Prometheus text-format exposition we can merge."""


class Merged(NamedTuple):
    families: list[MetricFamily]
    # samples of names the exporter has or reserves, or another family took, and repeated series
    dropped: int
    # samples whose value Prometheus cannot take (or OpenMetrics rejects for their type)
    invalid: int


class _Family:
    """A family being gathered: its samples as (suffix, labels, value)."""

    __slots__ = ("help", "name", "openmetrics_unknown", "samples", "type")

    def __init__(self, name: str, type_: MetricType, help_: str) -> None:
        self.name = name
        self.type = type_
        self.help = help_
        self.openmetrics_unknown = False
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def suffix_of(self, sample_name: str) -> str | None:
        """The sample's suffix in this family, None when it is not one of its samples."""
        if not sample_name.startswith(self.name):
            return None
        suffix = sample_name[len(self.name) :]
        return suffix if suffix in _SUFFIXES.get(self.type, ("",)) else None

    def add(self, suffix: str, labels: dict[str, str], value: float) -> None:
        extra = SUFFIXED_TYPES.get(self.type)
        if extra is not None:
            if suffix == _EXTRA_SUFFIX[self.type]:
                if extra not in labels:
                    raise MergeError(f"{self.name}{suffix}: a sample without {extra}")
                labels[extra] = _canonical(labels[extra], extra, self.name)
            else:
                labels.pop(extra, None)
        self.samples.append((suffix, labels, value))

    def build(self) -> MetricFamily:
        extra = SUFFIXED_TYPES.get(self.type)
        names: dict[str, None] = {}
        for _, labels, _ in self.samples:
            names.update(dict.fromkeys(labels))
        if extra is not None:
            names.pop(extra, None)
        labelnames = (*names, extra) if extra is not None else tuple(names)
        family = MetricFamily(
            self.name,
            self.type,
            self.help,
            labelnames,
            openmetrics_unknown=self.openmetrics_unknown,
        )
        samples = self.samples
        if extra is not None:
            samples = _by_series(samples, labelnames[:-1], extra, self.type)
            family.suffixes = [suffix for suffix, _, _ in samples]
        family.samples = [
            (tuple(labels.get(name, "") for name in labelnames), value)
            for _, labels, value in samples
        ]
        return family


def _by_series(
    samples: list[tuple[str, dict[str, str], float]],
    labelnames: tuple[str, ...],
    extra: str,
    type_: str,
) -> list[tuple[str, dict[str, str], float]]:
    """A histogram's or summary's samples grouped by series (OpenMetrics wants each series'
    samples together), in order of first appearance; buckets and quantiles ascending."""
    order: dict[tuple[str, ...], int] = {}
    suffix_rank = {suffix: rank for rank, suffix in enumerate(_SUFFIXES[type_])}

    def key(sample: tuple[str, dict[str, str], float]) -> tuple[int, int, float]:
        suffix, labels, _ = sample
        series = order.setdefault(tuple(labels.get(n, "") for n in labelnames), len(order))
        bound = float(labels[extra]) if suffix == _EXTRA_SUFFIX[type_] else 0.0
        return series, suffix_rank[suffix], bound

    return sorted(samples, key=key)


def _drop_bad_series(family: MetricFamily) -> int:
    """Removes the series of a histogram (or summary) that OpenMetrics rejects; returns how many
    samples went. A histogram series needs a +Inf bucket, bucket counts that never decrease,
    `_sum` and `_count` together, `_count` equal to the +Inf bucket, and no `_sum` beside a
    negative bucket bound; a summary's quantiles lie in [0, 1]."""
    assert family.suffixes is not None
    series: dict[tuple[str, ...], list[int]] = {}
    for index, (values, _) in enumerate(family.samples):
        series.setdefault(values[:-1], []).append(index)
    bad: set[int] = set()
    for indexes in series.values():
        if family.type == "summary":
            bad.update(
                i
                for i in indexes
                if family.suffixes[i] == "" and not 0 <= float(family.samples[i][0][-1]) <= 1
            )
            continue
        buckets = [
            (float(family.samples[i][0][-1]), family.samples[i][1])
            for i in indexes
            if family.suffixes[i] == "_bucket"
        ]
        others = {family.suffixes[i]: family.samples[i][1] for i in indexes}
        count = others.get("_count")
        if (
            not buckets
            or buckets[-1][0] != math.inf
            or any(a[1] > b[1] for a, b in itertools.pairwise(buckets))
            or ("_sum" in others) != (count is not None)
            or (count is not None and count != buckets[-1][1])
            or ("_sum" in others and buckets[0][0] < 0)
        ):
            bad.update(indexes)
    if bad:
        family.samples = [s for i, s in enumerate(family.samples) if i not in bad]
        family.suffixes = [s for i, s in enumerate(family.suffixes) if i not in bad]
    return len(bad)


def _canonical(number: str, label: str, family: str) -> str:
    try:
        bound = float(number)
    except ValueError:
        bound = math.nan
    if math.isnan(bound):
        raise MergeError(f"{family}: {label}={shown(number)} is not a number")
    return format_value(bound)


def _check_names(name: str, labels: Iterable[str]) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise MergeError(f"metric name {shown(name)} is not valid in text format 0.0.4")
    for label in labels:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            raise MergeError(f"{shown(name)}: label name {shown(label)} is not valid")


def parse_exposition(text: str) -> list[Metric]:
    """Parses text format 0.0.4: the costly half of a merge, which the probe runs off the
    event loop. Raises MergeError on text that does not parse."""
    # The parser would name the samples of a counter without `_total` with it: read untyped.
    text = _COUNTER_WITHOUT_TOTAL.sub(r"\1\2\3untyped\4", text)
    try:
        return list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError, IndexError, TypeError...
        raise MergeError(f"cannot parse the exposition text: {type(exc).__name__}: {exc}") from exc


def merge_exposition(ours: Iterable[MetricFamily], text: str, source: str) -> Merged:
    """The families of `text` the exporter does not emit yet, and what was dropped.

    `ours` are the families already in the probe's output. Raises MergeError on text that
    does not parse or whose names cannot be rendered.
    """
    return merge_parsed(ours, parse_exposition(text), source)


def merge_parsed(ours: Iterable[MetricFamily], parsed: Iterable[Metric], source: str) -> Merged:
    """merge_exposition for text already parsed by parse_exposition."""
    # names taken in text 0.0.4 or OpenMetrics: ours, then the merged families'
    taken: set[str] = set()
    for known in ours:
        taken.update(exposed_names(known.name, known.type))
    # OpenMetrics-only names of merged counters (`x`, `x_created` of `x_total`): given up,
    # the counter written as `unknown`, when another merged family has them
    counter_names: dict[str, _Family] = {}
    gathered: dict[str, _Family] = {}
    owners: dict[str, _Family] = {}  # text-format sample names of gathered families
    dropped = 0

    def new_family(name: str, type_: MetricType, help_: str) -> _Family | None:
        """A new family, or None when one of its names is taken."""
        names = text_names(name, type_)
        for other in exposed_names(name, type_):
            counter = counter_names.get(other)
            if counter is not None:
                counter.openmetrics_unknown = True
                for given_up in exposed_names(counter.name, "counter"):
                    if counter_names.pop(given_up, None) is not None:
                        taken.discard(given_up)
        if any(n in taken or is_reserved(n) for n in names):
            return None
        family = _Family(name, type_, _help(help_, source))
        if type_ == "counter":
            openmetrics_only = [n for n in exposed_names(name, type_) if n not in names]
            if any(n in taken or is_reserved(n) for n in openmetrics_only):
                family.openmetrics_unknown = True
            else:
                taken.update(openmetrics_only)
                counter_names.update(dict.fromkeys(openmetrics_only, family))
        else:
            created = [n for n in exposed_names(name, type_) if n not in names]
            if any(n in taken or is_reserved(n) for n in created):
                return None  # a histogram's or summary's `_created` is another family's
            taken.update(created)
        taken.update(names)
        gathered[name] = family
        owners.update(dict.fromkeys(names, family))
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
            if family is None or suffix is None:
                dropped += 1
            else:
                family.add(suffix, dict(sample.labels), sample.value)
    built = [gathering.build() for gathering in gathered.values() if gathering.samples]
    duplicates, invalid = drop_bad_samples(built)
    for merged in built:
        if merged.type in SUFFIXED_TYPES:
            invalid += _drop_bad_series(merged)
    return Merged([merged for merged in built if merged.samples], dropped + duplicates, invalid)


def _help(given: str, source: str) -> str:
    if not given:
        return f"Merged from {source} (no HELP given by the source)"
    return f"{given} (merged from {source})"
