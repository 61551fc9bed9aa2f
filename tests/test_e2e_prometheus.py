"""End to end: a real Prometheus scraping a real fleet of three Kamailios through the exporter's
command, with the project's own example scrape configs (deploy/prometheus/), SIP traffic from
sipp, and one Kamailio stopped and started again.

Prometheus runs with a 1 s scrape interval and its own storage in a temporary directory; every
assertion goes through its HTTP API (or its own /metrics, for scrape errors).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_binary
from helpers import (
    ExporterProcess,
    PrometheusProcess,
    by_label,
    http_get,
    samples,
    value,
    wait_until,
)
from kamailio_harness import KamailioInstance, Sipp, SippRun

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "deploy" / "prometheus"
SCRAPE_INTERVAL = 1.0
REGISTERS = 20
BUSY_CALLS = 10
HELD_CALLS = 5
# Prometheus' own counters of samples it had to drop or could not take: all must stay 0.
SCRAPE_PROBLEMS = (
    "prometheus_target_scrapes_sample_duplicate_timestamp_total",
    "prometheus_target_scrapes_sample_out_of_order_total",
    "prometheus_target_scrapes_sample_out_of_bounds_total",
    "prometheus_target_scrapes_exceeded_sample_limit_total",
    "prometheus_target_scrapes_exceeded_body_size_limit_total",
    "prometheus_target_scrapes_exemplar_out_of_order_total",
    "prometheus_target_scrape_pool_exceeded_label_limits_total",
    "prometheus_target_scrape_pool_exceeded_target_limit_total",
    "prometheus_target_scrape_pools_failed_total",
    "prometheus_rule_evaluation_failures_total",
)


def sent(run: SippRun, method: str) -> int:
    """Requests of `method` that sipp sent, retransmissions included (Kamailio counts both)."""
    total = 0
    for messages, retransmissions in re.findall(
        rf"^\s*{method} -+>\s+(\d+)\s+(\d+)", run.output, re.MULTILINE
    ):
        total += int(messages) + int(retransmissions)
    return total


def example(name: str, exporter_address: str) -> dict[str, Any]:
    """A deploy/prometheus example with the exporter's real address."""
    text = (EXAMPLES / name).read_text().replace("kamailio-probe-exporter:9494", exporter_address)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def prometheus_config(
    exporter_address: str, listed: list[str], by_module: str
) -> tuple[str, str | None]:
    """The static example (its probe job scraping `listed`, and `by_module` where it sets a
    module) plus the http_sd example's probe job as `kamailio-sd`, at a 1 s interval, with the
    example alert rules. Returns the YAML and the module name the static example uses."""
    static = example("prometheus-static.yml", exporter_address)
    http_sd = example("prometheus-http-sd.yml", exporter_address)
    interval = f"{SCRAPE_INTERVAL:g}s"
    static["global"] = {
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "evaluation_interval": interval,
    }
    static["rule_files"] = [
        str((EXAMPLES / rule).resolve()) for rule in static.get("rule_files", [])
    ]
    module = None
    for job in static["scrape_configs"]:
        if job.get("metrics_path") != "/probe":
            continue
        for group in job["static_configs"]:
            module = group.get("labels", {}).get("module") or module
            group["targets"] = [by_module] if "module" in group.get("labels", {}) else listed
    (sd_job,) = (job for job in http_sd["scrape_configs"] if "http_sd_configs" in job)
    sd_job["job_name"] = "kamailio-sd"
    static["scrape_configs"].append(sd_job)
    return yaml.safe_dump(static, sort_keys=False), module


def raw_samples(
    prometheus: PrometheusProcess, selector: str, seconds: int
) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    """Every stored sample (timestamp, value) of the last `seconds`, by series."""
    data = prometheus.api("query", query=f"{selector}[{seconds}s]")
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): [
            (float(t), float(v)) for t, v in r["values"]
        ]
        for r in data["result"]
    }


def series_by_job_and_instance(
    prometheus: PrometheusProcess, expr: str
) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["job"], dict(labels)["instance"]): v
        for labels, v in prometheus.query(expr).items()
    }


def problems(prometheus: PrometheusProcess) -> dict[str, float]:
    _, _, text = http_get(f"{prometheus.url}/metrics")
    found = {
        name: sum(v for (n, _), v in samples(text).items() if n == name) for name in SCRAPE_PROBLEMS
    }
    assert "prometheus_target_scrapes_sample_duplicate_timestamp_total" in text
    return {name: v for name, v in found.items() if v}


def test_prometheus_scrapes_a_real_fleet_through_the_exporter(
    kamailio_factory: Callable[[], KamailioInstance], tmp_path: Path
) -> None:
    require_binary("sipp")
    started = time.monotonic()
    kam_tcp, kam_unix, kam_dlg = kamailio_factory(), kamailio_factory(), kamailio_factory()
    dlg_address = kam_dlg.tcp

    # The exporter first (Prometheus needs its address), its config once the module is known.
    config = tmp_path / "targets.toml"
    config.write_text("")
    exporter = ExporterProcess(config, "--log.format", "json")
    try:
        prometheus_yaml, static_module = prometheus_config(
            f"127.0.0.1:{exporter.port}", ["kam-tcp", "kam-unix"], dlg_address
        )
        module = static_module or "light"
        config.write_text(f"""
[modules.{module}]
collectors = ["stats", "core", "dispatcher"]
timeout = 3.0

[modules.fleet]
collectors = ["all"]
timeout = 3.0
dispatcher_set_names = {{ "1" = "lab" }}

[[targets]]
name = "kam-tcp"
address = "{kam_tcp.tcp}"
labels = {{ site = "fra", role = "registrar" }}

[[targets]]
name = "kam-unix"
address = "{kam_unix.unix}"

[[targets]]
name = "kam-dlg"
address = "{kam_dlg.unix}"
module = "fleet"

[[allow]]
address = "tcp:127.0.0.0/8:{kam_dlg.ctl_tcp_port}"
module = "{module}"
""")
        status, _, body = http_get(f"{exporter.url}/-/reload", method="POST")
        assert status == 200, body
        prometheus = PrometheusProcess(tmp_path / "prometheus", prometheus_yaml)
        try:
            run_fleet_checks(
                prometheus, exporter, kam_tcp, kam_unix, kam_dlg, dlg_address, tmp_path
            )
        finally:
            prometheus_log = prometheus.log()
            prometheus.stop()
    finally:
        exporter.stop()
    assert not re.search(r"level=(error|warn)", prometheus_log), prometheus_log[-3000:]
    print(f"\nend to end in {time.monotonic() - started:.1f} s")


def run_fleet_checks(
    prometheus: PrometheusProcess,
    exporter: ExporterProcess,
    kam_tcp: KamailioInstance,
    kam_unix: KamailioInstance,
    kam_dlg: KamailioInstance,
    dlg_address: str,
    tmp_path: Path,
) -> None:
    static_instances = {"kam-tcp", "kam-unix", dlg_address}
    sd_instances = {"kam-tcp", "kam-unix", "kam-dlg"}
    expected_up = {("kamailio", i) for i in static_instances} | {
        ("kamailio-sd", i) for i in sd_instances
    }

    # Every target up, under its own name as instance, and the exporter's own job up.
    def all_up() -> bool:
        ups = series_by_job_and_instance(prometheus, "kamailio_up")
        return set(ups) == expected_up and all(v == 1.0 for v in ups.values())

    wait_until(all_up, 20.0, f"kamailio_up == 1 for {sorted(expected_up)}", interval=0.2)
    wait_until(
        lambda: list(prometheus.query('up{job="kamailio-probe-exporter"}').values()) == [1.0],
        5.0,
        "the exporter's own job to be up",
        interval=0.2,
    )
    wait_until(
        lambda: prometheus.query(
            'kamailio_exporter_probes_total{job="kamailio-probe-exporter",result="success"}'
        ),
        10.0,
        "the exporter's own metrics",
    )
    targets = prometheus.targets()
    assert all(t["health"] == "up" and t["lastError"] == "" for t in targets), targets
    sd_targets = {
        t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "kamailio-sd"
    }
    # The target's module and labels from /sd reach the scrape through the example's relabeling.
    assert "module=fleet" in sd_targets["kam-dlg"]["scrapeUrl"]
    assert "module=" not in sd_targets["kam-tcp"]["scrapeUrl"]
    assert sd_targets["kam-tcp"]["labels"]["site"] == "fra"
    _, _, sd = exporter.get("/sd")
    assert '"__meta_kamailio_target_module": "fleet"' in sd
    # The module chosen by the example's relabeling reached the exporter: its options apply.
    sets = prometheus.query('kamailio_dispatcher_target_up{instance="kam-dlg",set_name="lab"}')
    assert sets, "the SD target's module (dispatcher set names) did not apply"
    sd_series = prometheus.query('kamailio_up{job="kamailio-sd",instance="kam-tcp"}')
    assert dict(next(iter(sd_series)))["site"] == "fra"  # target labels travel with /sd

    counters = {
        "register": ('kamailio_core_rcv_request_total{method="register",instance="kam-tcp"}'),
        "accepted": 'kamailio_stats_registrar_accepted_regs_total{instance="kam-tcp"}',
        "busy": 'kamailio_core_rcv_request_total{method="invite",instance="kam-unix"}',
        "calls": 'kamailio_core_rcv_request_total{method="invite",instance="kam-dlg"}',
    }

    def current() -> dict[str, dict[str, float]]:
        return {name: by_label(prometheus.query(expr), "job") for name, expr in counters.items()}

    # The same value in both jobs means both scraped since the last change.
    def settled() -> dict[str, dict[str, float]] | None:
        now = current()
        return now if all(len(set(v.values())) == 1 and v for v in now.values()) else None

    before = wait_until(settled, 10.0, "counters present and equal in both jobs")

    # Traffic: registrations on kam-tcp, rejected INVITEs on kam-unix, and calls through the
    # dispatcher of kam-dlg held long enough for Prometheus to see them as active dialogs.
    held: dict[str, SippRun] = {}
    caller = threading.Thread(
        target=lambda: held.setdefault(
            "run", Sipp(kam_dlg, tmp_path / "sipp-dlg").calls(HELD_CALLS, hold_ms=5000)
        )
    )
    caller.start()
    try:
        registers = Sipp(kam_tcp, tmp_path / "sipp-reg").register(REGISTERS)
        busy = Sipp(kam_unix, tmp_path / "sipp-busy").busy(BUSY_CALLS)
        wait_until(
            lambda: prometheus.query(
                f'kamailio_dialog_active_dialogs{{job="kamailio-sd",instance="kam-dlg"}} '
                f"== {HELD_CALLS}"
            ),
            12.0,
            f"{HELD_CALLS} active dialogs in Prometheus",
            interval=0.2,
        )
        assert prometheus.query(
            f'kamailio_dlg_stats_active_ongoing{{instance="kam-dlg"}} == {HELD_CALLS}'
        )
    finally:
        caller.join(60)
    calls = held["run"]
    expected = {
        "register": sent(registers, "REGISTER"),
        "accepted": REGISTERS,
        "busy": sent(busy, "INVITE"),
        "calls": sent(calls, "INVITE"),
    }
    assert expected["register"] >= REGISTERS
    assert expected["busy"] >= BUSY_CALLS
    assert expected["calls"] >= HELD_CALLS
    if expected["register"] > REGISTERS:  # a retransmitted REGISTER is saved again
        expected["accepted"] = expected["register"]

    def increased_as_sent() -> bool:
        now = settled()
        return now is not None and all(
            now[name][job] - before[name][job] == expected[name]
            for name in counters
            for job in now[name]
        )

    try:
        wait_until(
            increased_as_sent, 10.0, "the counters to rise by the traffic sent", interval=0.2
        )
    except AssertionError:
        raise AssertionError(f"sent {expected}, before {before}, now {current()}") from None
    assert problems(prometheus) == {}

    stop_and_start_one(prometheus, kam_tcp, expected_up)
    assert problems(prometheus) == {}
    _, _, metrics = exporter.get("/metrics")
    assert value(metrics, "kamailio_exporter_probes_in_flight") == 0


def stop_and_start_one(
    prometheus: PrometheusProcess, kamailio: KamailioInstance, expected_up: set[tuple[str, str]]
) -> None:
    """kam-tcp stops: 0 from the first scrape after, the others stay 1; it starts again: 1 from
    the first scrape after, with no 0 after that.

    Prometheus scrapes on its own clock, so a scrape may see the new Kamailio up while start()
    is still waiting for it to answer: the restart is the window from the call of start() (not
    up before) to its return (up from then on), and inside it the samples may only go from 0
    to 1."""
    time.sleep(SCRAPE_INTERVAL)
    kamailio.stop()
    stopped = time.time()
    wait_until(
        lambda: (
            set(by_label(prometheus.query('kamailio_up{instance="kam-tcp"} == 0'), "job"))
            == {"kamailio", "kamailio-sd"}
        ),
        3 * SCRAPE_INTERVAL,
        "kam-tcp to be down in both jobs",
        interval=0.1,
    )
    time.sleep(2 * SCRAPE_INTERVAL)
    starting = time.time()
    kamailio.start()
    started = time.time()
    wait_until(
        lambda: (
            set(by_label(prometheus.query('kamailio_up{instance="kam-tcp"} == 1'), "job"))
            == {"kamailio", "kamailio-sd"}
        ),
        3 * SCRAPE_INTERVAL,
        "kam-tcp to be up again in both jobs",
        interval=0.1,
    )
    time.sleep(4 * SCRAPE_INTERVAL)
    ended = time.time()

    window = int(ended - stopped) + 3
    history = raw_samples(prometheus, "kamailio_up", window)
    for labels, points in history.items():
        key = (dict(labels)["job"], dict(labels)["instance"])
        assert key in expected_up
        if key[1] != "kam-tcp":
            assert all(v == 1.0 for t, v in points if t > stopped - 1), (key, points)
            continue
        after_stop = [(t, v) for t, v in points if t > stopped]
        context = (key, stopped, starting, started, after_stop)
        # The first scrape after the stop already says 0, and so does every one until the start.
        assert after_stop, context
        assert after_stop[0][0] - stopped <= SCRAPE_INTERVAL + 0.1, context
        assert after_stop[0][1] == 0.0, context
        assert all(v == 0.0 for t, v in after_stop if t < starting), context
        # Then 1 once, and 1 ever after: the values go from 0 to 1 only once.
        values = [v for _, v in after_stop]
        assert 1.0 in values, context
        first_up = values.index(1.0)
        assert set(values[:first_up]) == {0.0}, context
        assert set(values[first_up:]) == {1.0}, context
        # The first scrape after start() returned says 1 (at the latest).
        up_again = [(t, v) for t, v in after_stop if t > started]
        assert up_again, context
        assert up_again[0][0] - started <= SCRAPE_INTERVAL + 0.1, context
        assert len(up_again) >= 3, context
