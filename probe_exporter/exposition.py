"""Rendering of metric families: Prometheus text 0.0.4 and OpenMetrics 1.0.0.

Built for a probe's few hundred samples per request: per family name, the header and the
constant parts of a sample line are built once and cached; each sample adds those parts, its
label values (escaped only when they need it) and its value to one list of pieces, joined once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from .metrics import SUFFIXED_TYPES, MetricFamily, SampleValue, openmetrics_typed

__all__ = [
    "CONTENT_TYPE_OPENMETRICS",
    "CONTENT_TYPE_TEXT",
    "format_value",
    "negotiate",
    "render_openmetrics",
    "render_text",
]

CONTENT_TYPE_TEXT: Final = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Renderer = Callable[[Iterable[MetricFamily]], bytes]

_SPECIAL_VALUES: Final = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}
_OM_TYPES: Final = {"untyped": "unknown"}


class _Layout:
    """What a family renders as, apart from its samples: built once per family name.

    A sample is written as the constant parts around its label values and value (`prefix`,
    `separators`, `middle`); histogram and summary samples use `%` templates.
    """

    __slots__ = (
        "header",
        "help",
        "labelnames",
        "middle",
        "openmetrics_unknown",
        "prefix",
        "sample_name",
        "separators",
        "templates",
        "type",
    )

    def __init__(self, family: MetricFamily, header: str, sample_name: str) -> None:
        self.type = family.type
        self.help = family.help
        self.labelnames = labelnames = family.labelnames
        self.openmetrics_unknown = family.openmetrics_unknown
        self.header = header
        self.sample_name = sample_name
        # `name{a="%s",b="%s"} %s\n` per sample name (a histogram has three)
        self.templates: dict[str, str] = {}
        # name{a="<value>",b="<value>"} <value>
        # separators[i] goes before the i-th label value (separators[0], before the first, is
        # part of the prefix)
        self.separators = tuple(f'",{label}="' for label in labelnames)
        if labelnames:
            self.prefix = f'{sample_name}{{{labelnames[0]}="'
            self.middle = '"} '
        else:
            self.prefix, self.middle = f"{sample_name} ", ""

    def template(self, sample_name: str, labelnames: tuple[str, ...]) -> str:
        template = self.templates.get(sample_name)
        if template is None:
            if labelnames:
                labels = ",".join(f'{label}="%s"' for label in labelnames)
                template = f"{sample_name}{{{labels}}} %s\n"
            else:
                template = f"{sample_name} %s\n"
            self.templates[sample_name] = template
        return template


# Layouts by family name, one cache per format: families are built anew for every probe but
# their names repeat. A cache is cleared when it grows past the limit.
_CACHE_LIMIT: Final = 20_000
_text_layouts: dict[str, _Layout] = {}
_om_layouts: dict[str, _Layout] = {}


def format_value(value: SampleValue) -> str:
    """A sample value as Prometheus parses it: ints without a fraction, +Inf, -Inf, NaN."""
    if type(value) is int:
        return str(value)
    if isinstance(value, int):  # bool and other int subclasses
        return str(int(value))
    text = repr(float(value))
    return _SPECIAL_VALUES.get(text, text)


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _text_layout(family: MetricFamily) -> _Layout:
    name = family.name
    help_line = ""
    if family.help:
        escaped = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        help_line = f"# HELP {name} {escaped}\n"
    layout = _Layout(family, f"{help_line}# TYPE {name} {family.type}\n", name)
    if len(_text_layouts) >= _CACHE_LIMIT:
        _text_layouts.clear()
    _text_layouts[name] = layout
    return layout


def _om_layout(family: MetricFamily) -> _Layout:
    name = sample_name = family.name
    type_ = _OM_TYPES.get(family.type, family.type)
    if not openmetrics_typed(name, family.type, family.openmetrics_unknown):
        type_ = "unknown"  # the sample keeps its name: a counter's would gain `_total`
    elif family.type == "counter":
        name = name[:-6]
    help_line = ""
    if family.help:
        escaped = family.help.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        help_line = f"# HELP {name} {escaped}\n"
    layout = _Layout(family, f"{help_line}# TYPE {name} {type_}\n", sample_name)
    if len(_om_layouts) >= _CACHE_LIMIT:
        _om_layouts.clear()
    _om_layouts[family.name] = layout
    return layout


def _render(
    families: Iterable[MetricFamily],
    layouts: dict[str, _Layout],
    new_layout: Callable[[MetricFamily], _Layout],
) -> list[str]:
    """The lines of every family: one loop, as a probe renders about a hundred families and
    most hold a single sample, so per-family calls would cost more than the samples."""
    out: list[str] = []
    # out.append and layouts.get, not bound to locals: compiled, these are direct C calls
    value: object
    for family in families:
        layout = layouts.get(family.name)
        if (
            layout is None
            or layout.type != family.type
            or layout.help != family.help
            or layout.labelnames != family.labelnames
            or layout.openmetrics_unknown != family.openmetrics_unknown
        ):
            layout = new_layout(family)
        out.append(layout.header)
        if family.suffixes is not None and family.type in SUFFIXED_TYPES:
            _render_suffixed(out, family, layout)
            continue
        # Each sample's pieces go into `out` as they are: the one join at the end copies them
        # once, where a line built per sample would be copied twice and freed.
        prefix, middle = layout.prefix, layout.middle
        width = len(family.labelnames)
        if width == 0:
            for _, value in family.samples:
                out.append(prefix)
                out.append(format_value(value))
                out.append("\n")
        elif width == 1:
            for values, value in family.samples:
                first = values[0]
                if "\\" in first or '"' in first or "\n" in first:
                    first = _escape_label_value(first)
                out.append(prefix)
                out.append(first)
                out.append(middle)
                out.append(format_value(value))
                out.append("\n")
        else:
            separators = layout.separators
            for values, value in family.samples:
                joined = "".join(values)
                if "\\" in joined or '"' in joined or "\n" in joined:
                    values = tuple(map(_escape_label_value, values))
                out.append(prefix)
                out.append(values[0])
                for index in range(1, width):
                    out.append(separators[index])
                    out.append(values[index])
                out.append(middle)
                out.append(format_value(value))
                out.append("\n")
    return out


def _render_suffixed(out: list[str], family: MetricFamily, layout: _Layout) -> None:
    """Histogram and summary samples: `le`/`quantile` (the last label) only where the suffix
    has it."""
    labelnames = family.labelnames
    bucket_suffix = "_bucket" if family.type == "histogram" else ""
    assert family.suffixes is not None
    for suffix, (values, value) in zip(family.suffixes, family.samples, strict=True):
        if suffix != bucket_suffix:
            values = values[:-1]
        template = layout.template(family.name + suffix, labelnames[: len(values)])
        escaped = tuple(map(_escape_label_value, values))
        out.append(template % (*escaped, format_value(value)))


def render_text(families: Iterable[MetricFamily]) -> bytes:
    """Prometheus text format 0.0.4."""
    return "".join(_render(families, _text_layouts, _text_layout)).encode()


def render_openmetrics(families: Iterable[MetricFamily]) -> bytes:
    """OpenMetrics 1.0.0: counters are named without `_total`, their samples with it; a
    counter OpenMetrics cannot carry under its sample name is an `unknown` family."""
    out = _render(families, _om_layouts, _om_layout)
    out.append("# EOF\n")
    return "".join(out).encode()


def negotiate(accept: str | None) -> tuple[Renderer, str]:
    """The renderer and Content-Type for an Accept header, as prometheus_client chooses.

    OpenMetrics when `application/openmetrics-text` is accepted without a version or with a
    1.x version (quality values are not weighed), text 0.0.4 otherwise.
    """
    for accepted in (accept or "").split(","):
        media_type, *params = accepted.split(";")
        if media_type.strip() != "application/openmetrics-text":
            continue
        version = ""
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "version":
                version = value.strip()
        if not version or version.split(".")[0] == "1":
            return render_openmetrics, CONTENT_TYPE_OPENMETRICS
    return render_text, CONTENT_TYPE_TEXT
