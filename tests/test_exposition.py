"""The renderers: lossless round trips through prometheus_client's parsers, escaping, number
formats, OpenMetrics naming, content negotiation, and `promtool check metrics`."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterable

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from test_collectors import full_set_families

from probe_exporter.collectors.merge import merge_exposition
from probe_exporter.exposition import (
    CONTENT_TYPE_OPENMETRICS,
    CONTENT_TYPE_TEXT,
    format_value,
    negotiate,
    render_openmetrics,
    render_text,
)
from probe_exporter.metrics import MetricFamily

PROMTOOL = "/usr/bin/promtool"

Series = tuple[str, tuple[tuple[str, str], ...]]


def expected_series(families: Iterable[MetricFamily], openmetrics: bool) -> dict[Series, float]:
    """What a parser must read back: sample name and labels -> value."""
    series: dict[Series, float] = {}
    for family in families:
        name = family.name
        if family.type == "counter" and not name.endswith("_total") and not openmetrics:
            name += "_total"  # the text parser names counter samples so
        suffixes = family.suffixes or [""] * len(family.samples)
        for suffix, (values, value) in zip(suffixes, family.samples, strict=True):
            labels = dict(zip(family.labelnames, values, strict=True))
            if family.suffixes is not None and suffix not in ("_bucket", ""):
                labels.popitem()  # _sum and _count have no le/quantile
            key = (name + suffix, tuple(sorted(labels.items())))
            assert key not in series
            series[key] = value
    return series


def parsed_series(text: str, openmetrics: bool) -> tuple[dict[Series, float], dict[str, str]]:
    """Samples and HELP texts by family, as prometheus_client reads `text`."""
    parse = parse_openmetrics if openmetrics else parse_text
    series: dict[Series, float] = {}
    helps: dict[str, str] = {}
    for metric in parse(text):
        helps[metric.name] = metric.documentation
        for sample in metric.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in series
            series[key] = sample.value
    return series, helps


def assert_same_values(got: dict[Series, float], want: dict[Series, float]) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("openmetrics", [False, True])
def test_full_set_round_trips(openmetrics: bool) -> None:
    families = full_set_families()
    render = render_openmetrics if openmetrics else render_text
    got, helps = parsed_series(render(families).decode(), openmetrics)
    assert_same_values(got, expected_series(families, openmetrics))
    for family in families:
        name = family.name
        # a counter's family name drops _total, unless OpenMetrics writes it as unknown
        if (
            family.type == "counter"
            and name.endswith("_total")
            and not (openmetrics and family.openmetrics_unknown)
        ):
            name = name.removesuffix("_total")
        assert helps[name] == family.help


def tricky_families() -> list[MetricFamily]:
    values = MetricFamily(
        "test_values",
        "gauge",
        'Back\\slash, "quotes"\nand a newline',
        ("kind",),
        [
            (("int",), 0),
            (("negative",), -1),
            (("big",), 2**64),
            (("fraction",), 1.5),
            (("small",), 1e-7),
            (("large",), 1e20),
            (("inf",), math.inf),
            (("-inf",), -math.inf),
            (("nan",), math.nan),
            (("bool",), True),
        ],
    )
    labels = MetricFamily(
        "test_labels",
        "untyped",
        "",
        ("a", "b"),
        [
            (('q"uote', "back\\slash"), 1),
            (("new\nline", "%s %d {}"), 2),
            (("ünïcødé ✓", ""), 3),
            (("plain", "\\n literal"), 4),
        ],
    )
    one_label = MetricFamily(
        "test_one_label", "counter", "Counts", ("path",), [(('C:\\dir "x"\n',), 5)]
    )
    no_total = MetricFamily(
        "test_plain_counter", "counter", "A counter without _total", (), [((), 6)]
    )
    return [values, labels, one_label, no_total]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_escaping_and_numbers_round_trip(openmetrics: bool) -> None:
    families = tricky_families()
    render = render_openmetrics if openmetrics else render_text
    got, helps = parsed_series(render(families).decode(), openmetrics)
    want = expected_series(families, openmetrics)
    want[("test_values", (("kind", "bool"),))] = 1
    assert_same_values(got, want)
    assert helps["test_values"] == 'Back\\slash, "quotes"\nand a newline'


def test_text_format_lines() -> None:
    text = render_text(tricky_families()).decode()
    assert '# HELP test_values Back\\\\slash, "quotes"\\nand a newline\n' in text
    assert "# TYPE test_labels untyped\n" in text
    assert "# HELP test_labels" not in text  # no HELP line for an empty HELP
    for line in (
        'test_values{kind="inf"} +Inf',
        'test_values{kind="-inf"} -Inf',
        'test_values{kind="nan"} NaN',
        'test_values{kind="int"} 0',
        'test_values{kind="big"} 18446744073709551616',
        'test_values{kind="small"} 1e-07',
        'test_values{kind="bool"} 1',
        'test_labels{a="q\\"uote",b="back\\\\slash"} 1',
        'test_labels{a="new\\nline",b="%s %d {}"} 2',
        'test_one_label{path="C:\\\\dir \\"x\\"\\n"} 5',
        "test_plain_counter 6",
    ):
        assert line + "\n" in text


def test_openmetrics_names_types_and_eof() -> None:
    alias = MetricFamily("kamailio_bad_msg_hdr", "untyped", "old name", (), [((), 1)])
    counter = MetricFamily(
        "kamailio_bad_msg_hdr_total",
        "counter",
        "new name",
        (),
        [((), 1)],
        openmetrics_unknown=True,
    )
    text = render_openmetrics([*tricky_families(), alias, counter]).decode()
    assert text.endswith("# EOF\n")
    assert "# TYPE test_labels unknown\n" in text
    assert '# HELP test_values Back\\\\slash, \\"quotes\\"\\nand a newline\n' in text
    # every sample keeps its text-format name: a counter without _total is an unknown family
    assert "# TYPE test_plain_counter unknown\ntest_plain_counter 6\n" in text
    assert "# TYPE test_one_label unknown\n" in text
    assert "# TYPE kamailio_bad_msg_hdr unknown\nkamailio_bad_msg_hdr 1\n" in text
    assert "# TYPE kamailio_bad_msg_hdr_total unknown\nkamailio_bad_msg_hdr_total 1\n" in text
    list(parse_openmetrics(text))


def histogram_families() -> list[MetricFamily]:
    families, dropped, _ = merge_exposition(
        [],
        (
            "# TYPE lat histogram\n"
            'lat_bucket{op="a",le="0.500000"} 1\nlat_bucket{op="a",le="+Inf"} 3\n'
            'lat_sum{op="a"} 2.5\nlat_count{op="a"} 3\n'
            "# TYPE size summary\n"
            'size{quantile="0.5"} 10\nsize_sum 30\nsize_count 3\n'
        ),
        "src",
    )
    assert dropped == 0
    return families


@pytest.mark.parametrize("openmetrics", [False, True])
def test_histograms_and_summaries_round_trip(openmetrics: bool) -> None:
    families = histogram_families()
    assert [(f.name, f.type) for f in families] == [("lat", "histogram"), ("size", "summary")]
    render = render_openmetrics if openmetrics else render_text
    text = render(families).decode()
    assert 'lat_bucket{op="a",le="0.5"} 1\n' in text
    assert 'lat_sum{op="a"} 2.5\n' in text
    assert "size_count 3\n" in text
    got, _ = parsed_series(text, openmetrics)
    assert_same_values(got, expected_series(families, openmetrics))


def test_format_value() -> None:
    assert [format_value(v) for v in (3, -3, 0.25, math.inf, -math.inf, math.nan, False)] == [
        "3",
        "-3",
        "0.25",
        "+Inf",
        "-Inf",
        "NaN",
        "0",
    ]


def test_a_family_changing_shape_between_calls_renders_anew() -> None:
    first = MetricFamily("test_shape", "gauge", "one", ("a",), [(("x",), 1)])
    second = MetricFamily("test_shape", "counter", "two", ("a", "b"), [(("x", "y"), 2)])
    assert render_text([first]).decode() == (
        '# HELP test_shape one\n# TYPE test_shape gauge\ntest_shape{a="x"} 1\n'
    )
    assert render_text([second]).decode() == (
        '# HELP test_shape two\n# TYPE test_shape counter\ntest_shape{a="x",b="y"} 2\n'
    )


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (None, False),
        ("", False),
        ("text/plain;version=0.0.4", False),
        ("application/openmetrics-text", True),
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
        # what Prometheus sends: OpenMetrics preferred
        (
            "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
            "version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            True,
        ),
        ("application/openmetrics-text;version=0.0.1", False),
        ("application/openmetrics-text;version=2.0.0", False),
        ("text/html, application/json", False),
    ],
)
def test_negotiate(accept: str | None, openmetrics: bool) -> None:
    renderer, content_type = negotiate(accept)
    if openmetrics:
        assert (renderer, content_type) == (render_openmetrics, CONTENT_TYPE_OPENMETRICS)
    else:
        assert (renderer, content_type) == (render_text, CONTENT_TYPE_TEXT)


@pytest.mark.real
def test_promtool_finds_nothing_in_the_full_set() -> None:
    if not shutil.which(PROMTOOL):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{PROMTOOL} is missing (apt-get install prometheus)")
        pytest.skip(f"{PROMTOOL} is missing (apt-get install prometheus)")
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=render_text(full_set_families()),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
