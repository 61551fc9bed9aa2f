"""Sample names reach Prometheus' storage as the seed exporter and the merged sources give them.

A real Prometheus (Debian's 2.x, with its default scrape protocols: it asks for OpenMetrics
first) scrapes the real exporter probing a real Kamailio with its xhttp_prom page merged and an
rtpengine /metrics page (the lab's capture, plus a counter without `_total`, as newer rtpengine
versions have) merged too. Every sample name of the exporter's text-format answer, the seed's
names included (`kamailio_bad_msg_hdr`, `kamailio_dialog`...), must be stored under that name,
and nothing else. The same answer is lint-clean under `promtool check metrics`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import ExporterProcess, PrometheusProcess, require_tool, samples, wait_until
from hostile_http import HostileHttpSource
from kamailio_harness import KamailioInstance
from test_collectors import SEED_FAMILIES

pytestmark = pytest.mark.slow

SCRAPED = Path(__file__).parent / "fixtures" / "scraped"
# rtpengine counters named without _total (e.g. rtpengine_packets_lost in newer versions)
RTPENGINE_EXTRA = (
    "# HELP rtpengine_packets_lost Packets lost\n"
    "# TYPE rtpengine_packets_lost counter\n"
    "rtpengine_packets_lost 7\n"
)
# what Prometheus adds to every scrape
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}


@pytest.fixture(scope="module")
def rtpengine() -> Iterator[HostileHttpSource]:
    text = (SCRAPED / "rtpengine_metrics_during_calls.txt").read_text() + RTPENGINE_EXTRA
    server = HostileHttpSource({"metrics": text})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exporter(
    kamailio: KamailioInstance,
    rtpengine: HostileHttpSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExporterProcess]:
    config = tmp_path_factory.mktemp("names") / "targets.toml"
    config.write_text(f"""
[[targets]]
name = "kam"
address = "{kamailio.unix}"
xhttp_prom_url = "{kamailio.metrics_url}"
rtpengine_metrics_url = "{rtpengine.url("metrics")}"
""")
    process = ExporterProcess(config)
    try:
        yield process
    finally:
        process.stop()


def test_the_whole_answer_is_lint_clean(exporter: ExporterProcess) -> None:
    promtool = require_tool("promtool", "apt-get install -y prometheus")
    status, _, text = exporter.get("/probe", target="kam")
    assert status == 200
    assert 'kamailio_exporter_collector_success{collector="xhttp_prom"} 1' in text
    assert "rtpengine_packets_lost 7" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_prometheus_stores_every_sample_under_its_name(
    exporter: ExporterProcess, tmp_path: Path
) -> None:
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "kamailio",
                "metrics_path": "/probe",
                "params": {"target": ["kam"]},
                "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}],
            }
        ],
    }
    prometheus = PrometheusProcess(tmp_path / "prometheus", yaml.safe_dump(config))
    try:
        started = time.time()

        def stored() -> set[str]:
            names: set[str] = set(
                prometheus.api(
                    "label/__name__/values", **{"match[]": '{job="kamailio"}'}, start=f"{started}"
                )
            )
            return names if "rtpengine_packets_lost" in names else set()

        names = wait_until(stored, 20.0, "the probe's samples in Prometheus", interval=0.2)
        targets = prometheus.targets()
        assert [t["lastError"] for t in targets] == [""]
        # Prometheus asked for OpenMetrics: the exporter kept what it answered
        _, _, kept = exporter.get("/logs", target="kam")
        assert "# EOF" in kept
        status, _, text = exporter.get("/probe", target="kam")
        assert status == 200
        answered = {name for name, _ in samples(text)}
        # failure_info, duplicates and invalid values only appear when something fails
        assert names - SCRAPE_SERIES <= answered
        assert answered - names <= {"kamailio_probe_failure_info"}
        seed = {name for name in SEED_FAMILIES if name in answered}
        assert {"kamailio_bad_msg_hdr", "kamailio_dialog", "kamailio_pkgmem_used"} <= seed
        assert seed <= names
        assert {"rtpengine_packets_lost", "rtpengine_sessions", "rtpengine_sessions_total"} <= names
        assert "rtpengine_packets_lost_total" not in names
    finally:
        prometheus.stop()
