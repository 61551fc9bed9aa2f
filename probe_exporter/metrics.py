"""Metric families: what collectors produce and the exposition renders.

A `MetricFamily` carries its samples as (label values, value) pairs in the order of its
`labelnames`; the renderers in `exposition` turn it into text. `FamilyInfo` describes a family
for documentation (METRICS.md) and for name reservation; collectors build their families from
it, so what they emit and what is documented cannot drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

MetricType: TypeAlias = Literal["counter", "gauge", "untyped", "histogram", "summary"]
# A sample's value. Spelt out as a union, not `float`: compiled (mypyc), a `float` annotation
# converts an int to a float, and 7 would render as 7.0.
SampleValue: TypeAlias = int | float

# The label that follows the family's own labels in each sample of these types.
SUFFIXED_TYPES: Final[dict[str, str]] = {"histogram": "le", "summary": "quantile"}


@dataclass(slots=True, init=False)
class MetricFamily:
    """One metric family, named as in text format 0.0.4 (counters keep their `_total`).

    Histogram and summary families (only ever merged from scraped text) also carry
    `suffixes`, one per sample: "_bucket", "_sum", "_count" or "" (a summary's quantiles).
    Their last label is `le` or `quantile`; `_sum` and `_count` samples leave it empty and it
    is not rendered for them.

    `openmetrics_unknown` marks a counter whose OpenMetrics family name is another family's
    (the counter `kamailio_bad_msg_hdr_total` beside the seed's untyped `kamailio_bad_msg_hdr`):
    the OpenMetrics renderer writes it as an `unknown` family under its own sample name, so
    that every sample keeps its name in both formats.
    """

    name: str
    type: MetricType
    help: str
    labelnames: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], SampleValue]] = field(default_factory=list)
    suffixes: list[str] | None = None
    openmetrics_unknown: bool = False

    # Written out, not generated: compiled (mypyc), a dataclass's generated __init__ stays
    # interpreted, and a probe makes about a hundred families.
    def __init__(
        self,
        name: str,
        type: MetricType,
        help: str,
        labelnames: tuple[str, ...] = (),
        samples: list[tuple[tuple[str, ...], SampleValue]] | None = None,
        suffixes: list[str] | None = None,
        openmetrics_unknown: bool = False,
    ) -> None:
        self.name = name
        self.type = type
        self.help = help
        self.labelnames = labelnames
        self.samples = [] if samples is None else samples
        self.suffixes = suffixes
        self.openmetrics_unknown = openmetrics_unknown

    def add(self, labelvalues: Sequence[str], value: SampleValue) -> None:
        self.samples.append((tuple(labelvalues), value))


@dataclass(frozen=True, slots=True, eq=False)
class FamilyInfo:
    """Documentation of one family: METRICS.md is generated from these.

    Compared and hashed by identity (each is one module constant): collectors key their
    families by it, and a hash of every field costs more than the lookup.

    `name` is exact, or a pattern with <placeholders> for families named from Kamailio's
    data (statistics); `source` names the RPC the values come from; `note` is free text for
    METRICS.md (versions, compatibility).
    """

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    source: str = ""
    note: str = ""
    openmetrics_unknown: bool = False

    @property
    def is_pattern(self) -> bool:
        return "<" in self.name

    def family(self) -> MetricFamily:
        """An empty family with this name, type, HELP and labels."""
        # positional: a probe makes about a hundred families, and keywords cost half as much again
        return MetricFamily(
            self.name, self.type, self.help, self.labels, [], None, self.openmetrics_unknown
        )


def text_names(name: str, type_: str) -> tuple[str, ...]:
    """The family and sample names a family takes in text format 0.0.4."""
    if type_ == "histogram":
        return (name, name + "_bucket", name + "_sum", name + "_count")
    if type_ == "summary":
        return (name, name + "_sum", name + "_count")
    return (name,)


def openmetrics_typed(name: str, type_: str, openmetrics_unknown: bool) -> bool:
    """Whether OpenMetrics can carry a family under its type with its text-format sample
    names: not for a counter without `_total` (OpenMetrics would add it) or one marked
    `openmetrics_unknown`; those are written as `unknown` families, names unchanged."""
    return type_ != "counter" or (name.endswith("_total") and not openmetrics_unknown)


def exposed_names(name: str, type_: str) -> tuple[str, ...]:
    """Every family and sample name a family takes in text 0.0.4 or OpenMetrics.

    Two families clash when these overlap, e.g. the gauge `x` and the counter `x_total`, which
    OpenMetrics would both call `x`, or the counters `x_total` and `x_created_total`
    (OpenMetrics reserves `x_created` for the first one's creation time).
    """
    if type_ == "counter":
        base = name[:-6] if name.endswith("_total") else name
        return (base, base + "_total", base + "_created")
    if type_ == "histogram":
        return (name, name + "_bucket", name + "_sum", name + "_count", name + "_created")
    if type_ == "summary":
        return (name, name + "_sum", name + "_count", name + "_created")
    return (name,)


def sample_count(families: Iterable[MetricFamily]) -> int:
    """How many samples the families hold (compiled: a probe counts its samples more than once)."""
    count = 0
    for family in families:
        count += len(family.samples)
    return count


# The largest integer a Prometheus sample (a float64) can hold: a larger one does not parse.
_FLOAT_LIMIT: Final = int(sys.float_info.max)
# Ints below 2**60 are within a float64's range, and compiled they compare inline: a comparison
# with the limit above takes the slow path of big ints, so the values are checked against this
# bound first.
_SMALL_INT: Final = 1 << 60
# Samples that OpenMetrics (and a counter's meaning) require to be a non-negative number.
_COUNT_LIKE: Final = frozenset({"_bucket", "_count", "_sum"})


def _valid(value: SampleValue, type_: str, suffix: str) -> bool:
    if type(value) is int:
        if not -_FLOAT_LIMIT <= value <= _FLOAT_LIMIT:
            return False
    elif not isinstance(value, int | float):
        return False
    if type_ == "counter" or suffix in _COUNT_LIKE:
        if not value >= 0:  # also NaN
            return False
        if suffix in ("_bucket", "_count") and not float(value).is_integer():
            return False
    elif type_ == "summary" and suffix == "" and value < 0:
        return False
    return True


def drop_bad_samples(families: Iterable[MetricFamily]) -> tuple[int, int]:
    """Removes, in place, every sample that repeats a series of its family and every value a
    Prometheus sample cannot hold or its type forbids (a negative or NaN counter, a fractional
    bucket count...). Returns (repeated series, invalid values).

    The one place that keeps an exposition free of duplicate series: a family's samples share
    its label names, so two samples are one series exactly when their label values (and, for
    histograms and summaries, their suffixes) are equal.
    """
    duplicates = invalid = 0
    limit, small = _FLOAT_LIMIT, _SMALL_INT
    for family in families:
        samples = family.samples
        suffixes = family.suffixes
        type_ = family.type
        if suffixes is None:
            # the common case, inline (a probe has a few hundred samples): nothing to drop
            counter = type_ == "counter"
            for _, value in samples:
                if type(value) is int:
                    if (-small < value < small or -limit <= value <= limit) and (
                        not counter or value >= 0
                    ):
                        continue
                elif type(value) is float and (not counter or value >= 0):
                    continue
                break
            else:
                if len(samples) < 2 or len({values for values, _ in samples}) == len(samples):
                    continue
        kept: list[tuple[tuple[str, ...], SampleValue]] = []
        kept_suffixes: list[str] = []
        seen: set[object] = set()
        for index, (values, value) in enumerate(samples):
            suffix = suffixes[index] if suffixes is not None else ""
            key = (suffix, values)
            if key in seen:
                duplicates += 1
            elif not _valid(value, type_, suffix):
                invalid += 1
            else:
                seen.add(key)
                kept.append((values, value))
                kept_suffixes.append(suffix)
        family.samples = kept
        if suffixes is not None:
            family.suffixes = kept_suffixes
    return duplicates, invalid
