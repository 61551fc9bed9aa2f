"""deploy/: Prometheus examples, alert rules, the Grafana dashboard and the systemd unit.

Every PromQL expression of the rules and the dashboard must parse (promtool) and may only name
metrics the exporter emits, as listed in METRICS.md (a markdown table whose first column is the
family name in backticks), or Prometheus' own `up`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "rules" / "kamailio-alerts.yml"
RULE_TESTS = DEPLOY / "rules" / "kamailio-alerts.test.yml"
COMPAT_RULES = DEPLOY / "rules" / "florentchauveau-compat.yml"
COMPAT_TESTS = DEPLOY / "rules" / "florentchauveau-compat.test.yml"
MIGRATING = ROOT / "docs" / "migrating.md"
DASHBOARD = DEPLOY / "grafana" / "kamailio-fleet.json"
PROMETHEUS_CONFIGS = sorted((DEPLOY / "prometheus").glob("*.yml"))
UNIT = DEPLOY / "systemd" / "kamailio-probe-exporter.service"
METRICS_MD = ROOT / "METRICS.md"
TOOL_TIMEOUT = 30


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} not found (scripts/test.sh installs it from Debian)")
    assert path is not None
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=False,
    )


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


GRAFANA_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b")
GRAFANA_VARIABLES = re.compile(r"\$\{?\w+\}?")


def dashboard_expressions() -> list[str]:
    """PromQL of every panel and template variable, Grafana's variables made concrete."""
    exprs = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]["query"])
            assert query is not None, variable["query"]
            exprs.append(query.group(1))
    return [GRAFANA_VARIABLES.sub(".*", GRAFANA_INTERVALS.sub("5m", expr)) for expr in exprs]


# --- metric names in PromQL ------------------------------------------------------------------

PROMQL_WORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "start",
    "end",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (no __name__ matchers in our expressions)."""
    assert "__name__" not in expr, expr
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        word, call = match.groups()
        if call is None and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def exported_families() -> set[str]:
    families = set(
        re.findall(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`", METRICS_MD.read_text(), re.MULTILINE)
    )
    assert families, "no `family` rows found in METRICS.md"
    return families


def is_exported(name: str, families: set[str]) -> bool:
    """A sample name belongs to a family as is, or with a histogram's or a counter's suffix."""
    if name in families or name == "up":
        return True
    base = re.sub(r"_(bucket|sum|count|total)$", "", name)
    return base != name and (base in families or f"{base}_total" in families)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (instance, method) (rate(kamailio_core_rcv_request_total{job=~".*", '
            'method="a{b}c"}[5m]))',
            {"kamailio_core_rcv_request_total"},
        ),
        (
            'kamailio_shm_bytes{type="free"} / ignoring (type) kamailio_shm_bytes{type="total"} '
            "< 0.1 unless on (instance) (kamailio_up == 0)",
            {"kamailio_shm_bytes", "kamailio_up"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(h_seconds_bucket[5m] offset 1h))) > 1e3",
            {"h_seconds_bucket"},
        ),
        ("time() - ts_seconds", {"ts_seconds"}),
        ("count(a == 1) or vector(0)", {"a"}),
        ("sum(x) without (entry) > bool 2", {"x"}),
    ],
)
def test_metric_names_are_read_from_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_suffixes_map_to_families() -> None:
    families = {"kamailio_exporter_probes_total", "kamailio_exporter_probe_duration_seconds", "g"}
    assert is_exported("kamailio_exporter_probe_duration_seconds_bucket", families)
    assert is_exported("kamailio_exporter_probes_total", families)
    assert is_exported("up", families)
    assert not is_exported("g_total", {"h"})
    assert not is_exported("kamailio_exporter_probes", {"kamailio_exporter_probe"})


# --- promtool ---------------------------------------------------------------------------------


@pytest.mark.real
@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: p.name)
def test_prometheus_example_is_valid(config: Path) -> None:
    result = run("promtool", "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


@pytest.mark.real
def test_alert_rules_check() -> None:
    result = run("promtool", "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.real
def test_alert_rules_unit_tests() -> None:
    result = run("promtool", "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_every_alert_has_severity_and_runbook() -> None:
    rules = alert_rules()
    assert {
        "KamailioDown",
        "KamailioProbeFailures",
        "KamailioProbeNearDeadline",
        "KamailioShmNearlyExhausted",
        "KamailioPkgNearlyExhausted",
        "KamailioDispatcherDestinationDown",
        "KamailioTCPConnectionsNearLimit",
        "KamailioRtpengineDisabled",
        "KamailioExporterDown",
        "KamailioExporterConfigReloadFailed",
        "KamailioProbeRefused",
    } <= {rule["alert"] for rule in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, rule["alert"]


def test_kamailio_rules_are_silent_while_the_target_is_down() -> None:
    """One fault pages once: KamailioDown alone speaks for a down target (the promtool cases
    "fires only KamailioDown" show it for a down and a hung Kamailio)."""
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(RULES.read_text())["groups"]}
    for rule in groups["kamailio"]:
        if rule["alert"] == "KamailioDown":
            continue
        assert rule["expr"].rstrip().endswith("unless on (instance) (kamailio_up == 0)"), rule[
            "alert"
        ]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    silent_while_down = {
        case["alertname"]
        for test in tests
        if any(
            s["series"].startswith("kamailio_up") and set(s["values"].split("x")[0]) == {"0"}
            for s in test["input_series"]
        )
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    assert silent_while_down >= {rule["alert"] for rule in groups["kamailio"]} - {"KamailioDown"}


@pytest.mark.real
def test_florentchauveau_rules_check_and_pass_their_tests() -> None:
    for args in (("check", "rules", COMPAT_RULES), ("test", "rules", COMPAT_TESTS)):
        result = run("promtool", *map(str, args))
        assert result.returncode == 0, result.stdout + result.stderr


def test_florentchauveau_rules_are_each_tested_and_documented() -> None:
    rules = [r for g in yaml.safe_load(COMPAT_RULES.read_text())["groups"] for r in g["rules"]]
    records = {rule["record"] for rule in rules}
    cases = [
        case
        for test in yaml.safe_load(COMPAT_TESTS.read_text())["tests"]
        for case in test["promql_expr_test"]
    ]
    expected = {
        re.sub(r"\{.*", "", sample["labels"]) for case in cases for sample in case["exp_samples"]
    }
    in_exprs = {name for case in cases for name in re.findall(r"\bkamailio_\w+", case["expr"])}
    assert records <= expected | in_exprs
    table = set(re.findall(r"^\| `(kamailio_[a-z_]+)", MIGRATING.read_text(), re.MULTILINE))
    assert records <= table


def test_florentchauveau_rules_read_exported_metrics_only() -> None:
    families = exported_families()
    for group in yaml.safe_load(COMPAT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "__name__" in rule["expr"]:
                # kamailio_stats_fetch_value reads every kamailio_stats_<group>_<name> family.
                assert "kamailio_stats_<group>_<name>" in METRICS_MD.read_text()
                continue
            unknown = {n for n in metric_names(rule["expr"]) if not is_exported(n, families)}
            assert not unknown, (rule["record"], unknown)


@pytest.mark.real
def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    exprs = dashboard_expressions()
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:expr_{i}", "expr": expr}
                            for i, expr in enumerate(exprs)
                        ],
                    }
                ]
            }
        )
    )
    result = run("promtool", "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_promql_names_only_exported_metrics() -> None:
    families = exported_families()
    exprs = dashboard_expressions() + [rule["expr"] for rule in alert_rules()]
    unknown = {
        name: expr
        for expr in exprs
        for name in metric_names(expr)
        if not is_exported(name, families)
    }
    assert not unknown, f"metrics not in METRICS.md: {unknown}"


# --- the dashboard ----------------------------------------------------------------------------


def test_dashboard_shape() -> None:
    board = dashboard()
    assert board["uid"] == "kamailio-fleet"
    assert board["id"] is None
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["multi"]
    assert instance["includeAll"]
    assert "kamailio_up" in instance["query"]["query"]
    panels = dashboard_panels()
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    covered: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in covered, f"{panel['title']} overlaps {covered[(x, y)]}"
                covered[(x, y)] = panel["title"]
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]


def test_dashboard_covers_the_fleet_overview() -> None:
    exprs = " ".join(dashboard_expressions())
    for metric in (
        "kamailio_up",
        "kamailio_core_rcv_request_total",
        "kamailio_core_rcv_reply_total",
        "kamailio_tmx",
        "kamailio_dialog_active_dialogs",
        "kamailio_usrloc_registered_users",
        "kamailio_shm_bytes",
        "kamailio_pkgmem_real",
        "kamailio_tcp_connections",
        "kamailio_dispatcher_target_up",
        "kamailio_rtpengine_enabled",
        "kamailio_probe_duration_seconds",
        "kamailio_exporter_probe_duration_seconds_bucket",
    ):
        assert re.search(rf"\b{metric}\b", exprs), metric
    per_instance = [
        target["expr"]
        for panel in dashboard_panels()
        for target in panel["targets"]
        if "kamailio_exporter_" not in target["expr"] or "collector" in target["expr"]
    ]
    for expr in per_instance:
        assert 'instance=~"$instance"' in expr, expr


# --- the Prometheus examples in a real Prometheus ---------------------------------------------

SD_TARGETS: list[dict[str, Any]] = [
    {"targets": ["sbc-fra-1"], "labels": {"__meta_kamailio_target_module": "light", "site": "fra"}},
    {"targets": ["local"], "labels": {"__meta_kamailio_target_module": ""}},
    *(
        {"targets": [f"sbc-{n}"], "labels": {"__meta_kamailio_target_module": ""}}
        for n in range(10)
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _SdHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(SD_TARGETS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def sd_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SdHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sd"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _merged_examples(sd_url: str) -> dict[str, Any]:
    """The scrape jobs of every example in one config: job names prefixed by the file, /sd URLs
    pointed at the local stand-in."""
    jobs = []
    for path in PROMETHEUS_CONFIGS:
        for job in yaml.safe_load(path.read_text())["scrape_configs"]:
            job["job_name"] = f"{path.stem}/{job['job_name']}"
            for sd in job.get("http_sd_configs", []):
                sd["url"] = sd_url
            jobs.append(job)
    return {"global": {"scrape_interval": "1h", "scrape_timeout": "10s"}, "scrape_configs": jobs}


def _active_targets(api: str, pools: int, deadline: float) -> list[dict[str, Any]]:
    while True:
        with urllib.request.urlopen(f"{api}/api/v1/targets?state=active", timeout=5) as answer:
            targets: list[dict[str, Any]] = json.load(answer)["data"]["activeTargets"]
        if len({t["scrapePool"] for t in targets}) == pools or time.monotonic() > deadline:
            return targets
        time.sleep(0.25)


@pytest.mark.real
def test_examples_relabel_as_documented(tmp_path: Path, sd_server: str) -> None:
    config = _merged_examples(sd_server)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Discovery reaches the scrape manager within about 5 s of the start.
        deadline = time.monotonic() + 20
        api = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(f"{api}/-/ready", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "prometheus did not get ready"
                time.sleep(0.1)
        targets = _active_targets(api, len(config["scrape_configs"]), deadline)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    by_pool: dict[str, dict[str, dict[str, Any]]] = {}
    for target in targets:
        by_pool.setdefault(target["scrapePool"], {})[target["labels"]["instance"]] = target

    static = by_pool["prometheus-static/kamailio"]
    assert static["sbc-fra-1"]["scrapeUrl"] == (
        "http://kamailio-probe-exporter:9494/probe?target=sbc-fra-1"
    )
    assert static["tcp:10.20.0.7:2046"]["scrapeUrl"] == (
        "http://kamailio-probe-exporter:9494/probe?module=light&target=tcp%3A10.20.0.7%3A2046"
    )
    assert static["tcp:10.20.0.7:2046"]["labels"] == {
        "instance": "tcp:10.20.0.7:2046",
        "job": "prometheus-static/kamailio",
        "site": "ams",
    }

    discovered = by_pool["prometheus-http-sd/kamailio"]
    assert discovered["sbc-fra-1"]["scrapeUrl"] == (
        "http://kamailio-probe-exporter:9494/probe?module=light&target=sbc-fra-1"
    )
    assert discovered["sbc-fra-1"]["labels"]["site"] == "fra"
    assert discovered["local"]["scrapeUrl"] == (
        "http://kamailio-probe-exporter:9494/probe?target=local"
    )

    sharded = [t for t in targets if t["scrapePool"] == "prometheus-sharded/kamailio"]
    # Listed by both /sd sources, each Kamailio is still scraped once, by one replica.
    assert sorted(t["labels"]["instance"] for t in sharded) == sorted(
        entry["targets"][0] for entry in SD_TARGETS
    )
    replicas = {t["labels"]["instance"]: t["scrapeUrl"].split("/")[2] for t in sharded}
    assert set(replicas.values()) == {f"kamailio-probe-exporter-{n}:9494" for n in range(3)}

    for pool in ("prometheus-static", "prometheus-http-sd", "prometheus-sharded"):
        assert by_pool[f"{pool}/kamailio-probe-exporter"], pool


# --- systemd ----------------------------------------------------------------------------------


@pytest.mark.real
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # systemd-analyze checks that ExecStart exists: point it at a binary every system has.
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace(
            "/opt/kamailio-probe-exporter/bin/kamailio-probe-exporter", "/bin/true"
        )
    )
    result = run("systemd-analyze", "verify", str(unit))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert "--config.file=/etc/kamailio-probe-exporter/targets.toml" in UNIT.read_text()
