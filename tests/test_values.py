"""Values and series must be right whatever the sources send: the real exporter (its command)
probing a real Kamailio and a dead address, each with a hostile merged HTTP source
(tests/hostile_http.py), and a fake Kamailio whose replies repeat statistics and carry values
that are not numbers (tests/hostile_binrpc.py).

Every answer, in text 0.0.4 and in OpenMetrics, must parse with `promtool check metrics` and
both of prometheus_client's parsers, hold exactly one `kamailio_up` sample (0 for the dead
address: a source cannot make it look up), never repeat a series, and give every sample the
same name in both formats.
"""

from __future__ import annotations

import subprocess
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import pytest
from helpers import ExporterProcess, http_get, require_tool, samples, value
from hostile_binrpc import Behaviour, HostileServer
from hostile_http import PAGES, HostileHttpSource
from kamailio_harness import KamailioInstance, free_ports
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from probe_exporter.binrpc.codec import Struct, Value

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
TEXT = "text/plain;version=0.0.4"
Series = tuple[str, frozenset[tuple[str, str]]]


# A fake Kamailio's replies: a statistic and an sl code repeated, values no %lu prints.
STATS: list[tuple[str | None, Value]] = [
    ("core.rcv_requests", "7"),
    ("core.rcv_requests", "8"),  # repeated: the first one counts
    ("shmem.fragments", " 7 "),
    ("core.drop_requests", "1_000"),
    ("core.err_requests", "-3"),
    ("core.fwd_requests", "9" * 300),
    ("core.rcv_replies", "²"),  # a digit to int(), not to %lu
    ("core.drop_replies", str(1 << 64)),  # above what %lu prints
    ("core.err_replies", str((1 << 64) - 1)),  # the largest %lu: a counter keeps it
    ("script.weird", "+5"),
    ("script.fine", "12"),
    ("usrloc.location_users", "4"),
    ("usrloc.location-users", "5"),  # the same series before 5.4's names
]
SL_CODES: list[tuple[str | None, Value]] = [("200", 3), ("404", 1), ("200", 4)]
REPLIES: dict[str, list[Value]] = {
    "stats.fetch": [Struct(STATS)],
    "sl.stats": [Struct(SL_CODES)],
}


@pytest.fixture(scope="module")
def exporter(
    kamailio: KamailioInstance,
    http_source: HostileHttpSource,
    hostile: HostileServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExporterProcess]:
    (dead_port,) = free_ports("tcp")  # nothing listens there
    fake = hostile.listen(Behaviour.SCRIPTED, replies=REPLIES)
    targets = []
    for page in PAGES:
        for kind, address in (("dead", f"tcp:127.0.0.1:{dead_port}"), ("kam", kamailio.unix)):
            second = (
                f'rtpengine_metrics_url = "{http_source.url(page)}"\n' if page == "same" else ""
            )
            targets.append(
                f'[[targets]]\nname = "{kind}-{page}"\naddress = "{address}"\n'
                f'xhttp_prom_url = "{http_source.url(page)}"\n{second}'
            )
    targets.append(f'[[targets]]\nname = "fake"\naddress = "{fake.address}"\nmodule = "fake"\n')
    config = tmp_path_factory.mktemp("values") / "targets.toml"
    config.write_text(
        '[modules.default]\ncollectors = ["all"]\ntimeout = 3.0\n\n'
        '[modules.fake]\ncollectors = ["stats", "sl"]\ntimeout = 3.0\n\n' + "\n".join(targets)
    )
    process = ExporterProcess(config)
    try:
        yield process
    finally:
        process.stop()


def probe(exporter: ExporterProcess, target: str, accept: str) -> str:
    status, headers, body = http_get(
        f"{exporter.url}/probe?{urllib.parse.urlencode({'target': target})}",
        headers={"Accept": accept},
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith(accept.split(";")[0])
    return body


def parsed(text: str, openmetrics: bool) -> list[Series]:
    """Every sample as (name, labels without empty values): how Prometheus tells series apart."""
    parse = parse_openmetrics if openmetrics else parse_text
    found = []
    for family in parse(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if v != "")
            found.append((sample.name, labels))
    return found


def promtool_errors(text: str) -> str:
    """What `promtool check metrics` reports beyond lint (exit 1: the text does not parse)."""
    promtool = require_tool("promtool", "apt-get install -y prometheus")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert result.returncode in (0, 1, 3), result
    return "" if result.returncode != 1 else result.stderr.decode() + result.stdout.decode()


def check_answer(exporter: ExporterProcess, target: str) -> tuple[str, list[Series]]:
    """Probes `target` in both formats and checks both answers; returns the text answer and
    its series."""
    text = probe(exporter, target, TEXT)
    om = probe(exporter, target, OPENMETRICS)
    assert promtool_errors(text) == ""
    text_series = parsed(text, openmetrics=False)
    om_series = parsed(om, openmetrics=True)
    for series in (text_series, om_series):
        repeated = [s for s, n in Counter(series).items() if n > 1]
        assert repeated == [], repeated
        assert [name for name, _ in series].count("kamailio_up") == 1
    # what Prometheus stores is the same whichever format it asked for (probe durations differ)
    assert {name for name, _ in text_series} == {name for name, _ in om_series}
    return text, text_series


@pytest.mark.parametrize("page", list(PAGES))
def test_hostile_sources_never_break_an_answer(exporter: ExporterProcess, page: str) -> None:
    for kind, up in (("dead", 0.0), ("kam", 1.0)):
        text, series = check_answer(exporter, f"{kind}-{page}")
        assert value(text, "kamailio_up") == up
        names = {name for name, _ in series}
        # no merged sample under a name the exporter has or reserves
        assert "kamailio_pkgmem_used" not in names or kind == "kam"
        assert "kamailio_stats_core_anything_total" not in names
        assert "kamailio_dialog_expired_dialogs" not in names
        assert "kamailio_bad_msg_hdr_created" not in names
        assert "kamailio_tm_stats_current" not in names or kind == "kam"


def merged_counts(text: str, source: str = "xhttp_prom") -> tuple[float | None, float | None]:
    return (
        value(text, "kamailio_exporter_merged_duplicates", source=source),
        value(text, "kamailio_exporter_invalid_values", collector=source),
    )


def test_shadowing_names_are_dropped_and_counted(exporter: ExporterProcess) -> None:
    text, _ = check_answer(exporter, "dead-shadow")
    assert value(text, "kamailio_up") == 0.0
    assert value(text, "kamailio_exporter_collector_success", collector="xhttp_prom") == 1.0
    assert merged_counts(text) == (9.0, None)
    assert value(text, "kept_by_source") == 1.0
    assert "Merged from xhttp_prom (no HELP given by the source)" in text


def test_repeated_series_are_dropped_and_counted(exporter: ExporterProcess) -> None:
    text, _ = check_answer(exporter, "dead-duplicates")
    # m{a=""} is m; m{a="1"} and c_total{x="1"} repeat
    assert merged_counts(text) == (3.0, None)
    assert value(text, "m", a="") == 1.0
    assert value(text, "m", a="1") == 3.0
    assert value(text, "c_total", x="1") == 1.0


def test_two_sources_of_one_probe_never_give_the_same_series(exporter: ExporterProcess) -> None:
    text, _ = check_answer(exporter, "dead-same")
    assert merged_counts(text, "xhttp_prom") == (0.0, None)
    assert merged_counts(text, "rtpengine_metrics") == (2.0, None)
    assert value(text, "same_metric") == 1.0


def test_values_prometheus_cannot_take_are_dropped_and_counted(
    exporter: ExporterProcess,
) -> None:
    text, series = check_answer(exporter, "dead-huge_values")
    names = {name for name, _ in series}
    # negative and NaN counters go, and an integer of 400 digits (no float64 holds it, so
    # Prometheus would reject the whole scrape); 1e400 is read as +Inf, as Prometheus reads it
    assert merged_counts(text) == (0.0, 3.0)
    assert {"neg_total", "nan_total", "long_int"}.isdisjoint(names)
    assert {"big", "nan", "inf", "minus_inf", "good_total"} <= names


def test_broken_histograms_are_dropped_and_counted(exporter: ExporterProcess) -> None:
    text, series = check_answer(exporter, "dead-histograms")
    names = {name for name, _ in series}
    assert {"fine_bucket", "fine_sum", "fine_count", "quantiles", "quantiles_sum"} <= names
    assert not any(n.startswith(("no_inf", "decreasing", "mismatch", "fraction")) for n in names)
    # 3 + 4 + 3 + 3 samples of broken series, one quantile out of [0, 1]; fine_created is the
    # histogram's _created in OpenMetrics
    assert merged_counts(text) == (1.0, 14.0)
    assert "fine_created" not in names


def test_openmetrics_only_clashes_keep_every_sample_name(exporter: ExporterProcess) -> None:
    _, series = check_answer(exporter, "dead-openmetrics_clash")
    names = {name for name, _ in series}
    assert {"sessions", "sessions_total", "packets_lost", "untyped_first"} <= names
    om = probe(exporter, "dead-openmetrics_clash", OPENMETRICS)
    assert "# TYPE sessions_total unknown\nsessions_total 9\n" in om
    assert "packets_lost 7\n" in om
    assert "untyped_first_total 1\n" in om


@pytest.mark.parametrize("page", ["invalid_name", "invalid_label", "not_metrics", "binary"])
def test_a_source_that_cannot_be_read_fails_alone(exporter: ExporterProcess, page: str) -> None:
    text, _ = check_answer(exporter, f"kam-{page}")
    assert value(text, "kamailio_up") == 1.0
    assert value(text, "kamailio_exporter_collector_success", collector="xhttp_prom") == 0.0
    assert value(text, "kamailio_exporter_collector_success", collector="stats") == 1.0


def test_statistic_values_are_read_strictly(exporter: ExporterProcess) -> None:
    text, _ = check_answer(exporter, "fake")
    assert value(text, "kamailio_up") == 1.0
    found = samples(text)
    # only the first of a repeated statistic; the largest %lu is kept
    assert value(text, "kamailio_core_request_total", method="rcv") == 7.0
    assert value(text, "kamailio_core_reply_total", type="err") == (1 << 64) - 1
    assert value(text, "kamailio_fine") == 12.0
    # " 7 ", "1_000", "-3", 300 digits, "²", 2^64 and "+5" are not %lu values
    for absent in (
        ("kamailio_shm_fragments", ()),
        ("kamailio_core_request_total", (("method", "drop"),)),
        ("kamailio_core_request_total", (("method", "err"),)),
        ("kamailio_core_request_total", (("method", "fwd"),)),
        ("kamailio_core_reply_total", (("type", "rcv"),)),
        ("kamailio_core_reply_total", (("type", "drop"),)),
        ("kamailio_weird", ()),
    ):
        assert absent not in found, absent
    assert value(text, "kamailio_exporter_stats_dropped", reason="bad_value") == 7.0
    # repeated statistic (core.rcv_requests) and sl code (200): dropped and counted
    assert value(text, "kamailio_exporter_stats_dropped", reason="duplicate") == 1.0
    assert value(text, "kamailio_exporter_duplicate_series", collector="stats") == 1.0
    assert value(text, "kamailio_exporter_duplicate_series", collector="sl") == 1.0
    assert value(text, "kamailio_sl_stats_codes_total", code="200") == 3.0
    assert value(text, "kamailio_usrloc_users", table="location") == 4.0
