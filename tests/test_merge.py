"""Merging scraped expositions (the lab's xhttp_prom and rtpengine /metrics bodies) into the
probe's families."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from test_collectors import full_set_families

from probe_exporter.collectors import COLLECTORS, is_reserved
from probe_exporter.collectors.merge import MergeError, merge_exposition
from probe_exporter.exposition import render_openmetrics, render_text
from probe_exporter.metrics import MetricFamily, exposed_names
from probe_exporter.probe import PROBE_FAMILIES

SCRAPED = Path(__file__).parent / "fixtures" / "scraped"
SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)(?: \d+)?$")


def scraped(name: str) -> str:
    return (SCRAPED / name).read_text()


def input_samples(text: str) -> dict[tuple[str, str], float]:
    """(name, labels as written) -> value of every sample line, timestamps left out."""
    samples = {}
    for line in text.splitlines():
        match = SAMPLE_LINE.match(line)
        if match:
            samples[(match[1], match[2] or "")] = float(match[3])
    return samples


def output_samples(families: list[MetricFamily]) -> dict[tuple[str, str], float]:
    return input_samples(render_text(families).decode())


def test_xhttp_prom_merges_without_our_names_and_timestamps() -> None:
    text = scraped("xhttp_prom_metrics.txt")
    merged, dropped, invalid = merge_exposition(full_set_families(), text, "xhttp_prom")
    want = input_samples(text)
    # names of the exporter's families (statistics' dialog and usrloc families), the last three
    # those of the kamailio_dialog_*_dialogs_total counters in OpenMetrics
    ours = {
        "kamailio_dialog_active_dialogs",
        "kamailio_dialog_early_dialogs",
        "kamailio_usrloc_registered_users",
        "kamailio_dialog_expired_dialogs",
        "kamailio_dialog_failed_dialogs",
        "kamailio_dialog_processed_dialogs",
    }
    assert (dropped, invalid) == (len(ours), 0)
    assert output_samples(merged) == {key: v for key, v in want.items() if key[0] not in ours}
    assert {f.type for f in merged} == {"untyped"}
    assert merged[0].name == "kamailio_lab_requests_total"
    assert merged[0].labelnames == ("method",)
    assert {f.help for f in merged} == {"Merged from xhttp_prom (no HELP given by the source)"}
    rendered = render_text(merged).decode()
    assert "1795569123867" not in rendered
    list(parse_text(rendered))
    list(parse_openmetrics(render_openmetrics([*full_set_families(), *merged]).decode()))


@pytest.mark.parametrize(
    "name", ["rtpengine_metrics_idle.txt", "rtpengine_metrics_during_calls.txt"]
)
def test_rtpengine_families_are_joined_and_kept(name: str) -> None:
    text = scraped(name)
    merged, dropped, invalid = merge_exposition(full_set_families(), text, "rtpengine")
    assert (dropped, invalid) == (0, 0)
    assert output_samples(merged) == input_samples(text)
    names = [family.name for family in merged]
    assert len(names) == len(set(names))
    by_name = {family.name: family for family in merged}
    assert by_name["rtpengine_sessions"].type == "gauge"
    # rtpengine_sessions_total clashes with the gauge rtpengine_sessions in OpenMetrics only:
    # there it is an unknown family, under its own sample name
    assert by_name["rtpengine_sessions_total"].type == "counter"
    assert by_name["rtpengine_sessions_total"].openmetrics_unknown
    assert by_name["rtpengine_sessions"].help == "Owned sessions (merged from rtpengine)"
    assert by_name["rtpengine_packets_total"].labelnames == ("type",)
    assert len(by_name["rtpengine_packets_total"].samples) == 2  # userspace, then kernel
    if "rtpengine_requests_total" in by_name:  # interleaved with request_seconds: one family
        requests = by_name["rtpengine_requests_total"]
        assert (requests.type, requests.labelnames) == ("counter", ("proxy", "request"))
        assert len(requests.samples) == len(by_name["rtpengine_request_seconds_total"].samples)
    assert (by_name["rtpengine_ports"].type, by_name["rtpengine_ports"].labelnames) == (
        "gauge",
        ("name", "address"),
    )
    text_out = render_text(merged).decode()
    assert [m.name for m in parse_text(text_out)].count("rtpengine_sessions") == 2
    om_out = render_openmetrics(merged).decode()
    assert "# TYPE rtpengine_sessions_total unknown\n" in om_out
    assert output_samples(merged) == {
        (
            s.name,
            "{" + ",".join(f'{k}="{v}"' for k, v in s.labels.items()) + "}" if s.labels else "",
        ): s.value
        for m in parse_openmetrics(om_out)
        for s in m.samples
    }


def test_families_we_emit_are_dropped_and_counted() -> None:
    ours = [
        MetricFamily("kamailio_up", "gauge", "", (), [((), 1)]),
        MetricFamily("kamailio_calls_total", "counter", "", (), [((), 1)]),
    ]
    merged, dropped, _ = merge_exposition(
        ours,
        (
            "kamailio_up 0\n"
            "# TYPE kamailio_calls counter\n"  # the OpenMetrics name of ours
            'kamailio_calls_total{a="1"} 1\nkamailio_calls_total{a="2"} 2\n'
            "kamailio_calls 7\n"  # our counter's OpenMetrics family name
            "kamailio_other 3\n"
        ),
        "src",
    )
    assert dropped == 4
    assert [f.name for f in merged] == ["kamailio_other"]


def test_repeated_series_are_dropped_and_counted() -> None:
    merged, dropped, _ = merge_exposition(
        [], ('x{a="1"} 1\nx{a="1"} 2 1795569123867\ny 1\nx{a="2"} 3\n'), "src"
    )
    assert dropped == 1
    assert [(f.name, f.samples) for f in merged] == [
        ("x", [(("1",), 1), (("2",), 3)]),
        ("y", [((), 1)]),
    ]


def test_labels_missing_from_some_samples_are_empty() -> None:
    merged, _, _ = merge_exposition([], 'x{a="1"} 1\nx{b="2"} 2\n', "src")
    assert (merged[0].labelnames, merged[0].samples) == (
        ("a", "b"),
        [(("1", ""), 1), (("", "2"), 2)],
    )


def test_a_counter_keeps_its_sample_name() -> None:
    # without _total (which OpenMetrics would add): untyped, so that no format renames it
    merged, _, _ = merge_exposition(
        [], "# HELP c Calls\n# TYPE c counter\nc 3\n# TYPE d_total counter\nd_total 4\n", "src"
    )
    assert [(f.name, f.type, f.help, f.samples) for f in merged] == [
        ("c", "untyped", "Calls (merged from src)", [((), 3)]),
        ("d_total", "counter", "Merged from src (no HELP given by the source)", [((), 4)]),
    ]
    assert "\nc 3\n" in render_openmetrics(merged).decode()
    assert "\nd_total 4\n" in render_openmetrics(merged).decode()


def test_a_typed_histogram_stays_one() -> None:
    text = (
        "# HELP lat Latency\n# TYPE lat histogram\n"
        'lat_bucket{m="a",le="0.100000"} 1 1795569123867\n'
        'lat_bucket{m="a",le="+Inf"} 2 1795569123867\n'
        'lat_sum{m="a"} 0.3 1795569123867\nlat_count{m="a"} 2 1795569123867\n'
    )
    merged, dropped, _ = merge_exposition([], text, "src")
    assert dropped == 0
    (lat,) = merged
    assert (lat.type, lat.labelnames, lat.suffixes) == (
        "histogram",
        ("m", "le"),
        ["_bucket", "_bucket", "_sum", "_count"],
    )
    assert render_text(merged).decode() == (
        '# HELP lat Latency (merged from src)\n# TYPE lat histogram\nlat_bucket{m="a",le="0.1"} 1\n'
        'lat_bucket{m="a",le="+Inf"} 2\nlat_sum{m="a"} 0.3\nlat_count{m="a"} 2\n'
    )
    list(parse_openmetrics(render_openmetrics(merged).decode()))


def test_an_untyped_histogram_stays_in_pieces() -> None:
    # xhttp_prom before 6.1 prints no TYPE: the parts are untyped families of their own
    merged, _, _ = merge_exposition(
        [],
        ('lat_bucket{le="0.100000"} 1\nlat_bucket{le="+Inf"} 2\nlat_sum 0.3\nlat_count 2\n'),
        "src",
    )
    assert [(f.name, f.type) for f in merged] == [
        ("lat_bucket", "untyped"),
        ("lat_sum", "untyped"),
        ("lat_count", "untyped"),
    ]
    assert merged[0].samples == [(("0.100000",), 1), (("+Inf",), 2)]


def test_empty_text_merges_nothing() -> None:
    assert merge_exposition([], "", "src") == ([], 0, 0)
    assert merge_exposition([], "# NO User defined metrics\n\n", "src") == ([], 0, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HTTP/1.1 200 OK\ncontent-type: text/plain\n\nx 1\n", "cannot parse"),
        ("x{a=1} 1\n", "cannot parse"),
        ('x{a="1" 1\n', "cannot parse"),
        ("x 1 abc\n", "cannot parse"),
        ("x one\n", "cannot parse"),
        ('# TYPE h histogram\nh_bucket{le="x"} 1\n', "not a number"),
        ("# TYPE h histogram\nh_bucket 1\n", "without le"),
    ],
)
def test_bad_text_raises(text: str, message: str) -> None:
    with pytest.raises(MergeError, match=message):
        merge_exposition([], text, "src")


# -- generated expositions: whatever a source sends, the output stays one valid exposition -----

_NAMES = (
    "kamailio_up",
    "kamailio_probe_duration_seconds",
    "kamailio_exporter_collector_success",
    "kamailio_pkgmem_used",
    "kamailio_bad_msg_hdr",
    "kamailio_stats_x_total",
    "m",
    "m_total",
    "m_created",
    "m_bucket",
    "m_sum",
    "m_count",
    "n",
)
_LABELS = (
    "",
    '{a=""}',
    '{a="1"}',
    '{a="1",b="x\\ny"}',
    '{a="\\q"}',
    '{le="+Inf"}',
    '{le="0.5"}',
    '{a="1",le="1"}',
    '{quantile="0.5"}',
    '{quantile="2"}',
)
_VALUES = ("0", "1", "2", "-1", "1.5", "NaN", "+Inf", "-Inf", "1e400", "9" * 400)
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_LINE = st.one_of(
    st.builds(
        lambda name, labels, value: f"{name}{labels} {value}",
        st.sampled_from(_NAMES),
        st.sampled_from(_LABELS),
        st.sampled_from(_VALUES),
    ),
    st.builds(
        lambda name, type_: f"# TYPE {name} {type_}",
        st.sampled_from(_NAMES),
        st.sampled_from(_TYPES),
    ),
    st.builds(lambda name: f"# HELP {name} Some \\ help", st.sampled_from(_NAMES)),
    st.just("# EOF"),
    st.just(""),
)
_OURS: list[MetricFamily] = []


def _ours() -> list[MetricFamily]:
    """The full set and kamailio_up: what a probe has before its sources are merged."""
    if not _OURS:
        _OURS.extend(
            [*full_set_families(), MetricFamily("kamailio_up", "gauge", "Up", (), [((), 0)])]
        )
    return _OURS


def _series(text: str, openmetrics: bool) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    parse = parse_openmetrics if openmetrics else parse_text
    return [
        (s.name, frozenset((k, v) for k, v in s.labels.items() if v))
        for family in parse(text)
        for s in family.samples
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, max_size=25))
def test_any_merge_renders_one_valid_exposition(lines: list[str]) -> None:
    ours = _ours()
    try:
        merged, _, _ = merge_exposition(ours, "\n".join(lines) + "\n", "src")
    except MergeError:
        return
    families = [*ours, *merged]
    names_by_format = []
    for openmetrics, render in ((False, render_text), (True, render_openmetrics)):
        series = _series(render(families).decode(), openmetrics)
        assert len(series) == len(set(series)), "a repeated series"
        assert [name for name, _ in series].count("kamailio_up") == 1
        names_by_format.append({name for name, _ in series})
    assert names_by_format[0] == names_by_format[1]


def test_every_name_of_the_exporter_is_reserved() -> None:
    """Declared, not found by order: every probe family and every collector's families (their
    OpenMetrics names too), whether or not a collector runs."""
    declared = [*PROBE_FAMILIES, *(i for c in COLLECTORS.values() for i in c.families)]
    for info in declared:
        if info.is_pattern:
            assert info.name.startswith("kamailio_")
            continue
        for name in exposed_names(info.name, info.type):
            assert is_reserved(name), name
    assert is_reserved("kamailio_stats_anything_total")
    assert is_reserved("kamailio_exporter_anything")
    assert not is_reserved("kamailio_core_bad_msg_hdr")  # xhttp_prom's own name
