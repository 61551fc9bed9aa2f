"""Metric families: what collectors produce and the exposition renders.

A `MetricFamily` carries its samples as (label values, value) pairs in the order of its
`labelnames`; the renderers in `exposition` turn it into text. `FamilyInfo` describes a family
for documentation (METRICS.md) and for name reservation; collectors build their families from
it, so what they emit and what is documented cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

MetricType: TypeAlias = Literal["counter", "gauge", "untyped", "histogram", "summary"]

# The label that follows the family's own labels in each sample of these types.
SUFFIXED_TYPES: dict[str, str] = {"histogram": "le", "summary": "quantile"}


@dataclass(slots=True)
class MetricFamily:
    """One metric family, named as in text format 0.0.4 (counters keep their `_total`).

    Histogram and summary families (only ever merged from scraped text) also carry
    `suffixes`, one per sample: "_bucket", "_sum", "_count" or "" (a summary's quantiles).
    Their last label is `le` or `quantile`; `_sum` and `_count` samples leave it empty and it
    is not rendered for them.

    `text_format_only` marks a compatibility copy of data that another family carries under
    the name OpenMetrics would give this one (`kamailio_bad_msg_hdr` beside the counter
    `kamailio_bad_msg_hdr_total`): the OpenMetrics renderer leaves it out.
    """

    name: str
    type: MetricType
    help: str
    labelnames: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)
    suffixes: list[str] | None = None
    text_format_only: bool = False

    def add(self, labelvalues: Sequence[str], value: float) -> None:
        self.samples.append((tuple(labelvalues), value))


@dataclass(frozen=True, slots=True)
class FamilyInfo:
    """Documentation of one family: METRICS.md is generated from these.

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
    text_format_only: bool = False

    @property
    def is_pattern(self) -> bool:
        return "<" in self.name

    def family(self) -> MetricFamily:
        """An empty family with this name, type, HELP and labels."""
        # positional: a probe makes about a hundred families, and keywords cost half as much again
        return MetricFamily(
            self.name, self.type, self.help, self.labels, [], None, self.text_format_only
        )


def text_names(name: str, type_: str) -> tuple[str, ...]:
    """The family and sample names a family takes in text format 0.0.4."""
    if type_ == "histogram":
        return (name, name + "_bucket", name + "_sum", name + "_count")
    if type_ == "summary":
        return (name, name + "_sum", name + "_count")
    return (name,)


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
