"""Security of the exporter as deployed (its real command):

- it never connects to an address targets.toml does not allow, however the target is spelled;
  listeners on the forbidden addresses count every connection and datagram, and see none;
- TLS and bcrypt basic auth work for curl and for a real Prometheus; wrong credentials get 401;
  only the health endpoints are open; no secret reaches the logs, debug output or pages;
- parameters and headers are length-limited, and nothing user-supplied reaches HTML unescaped.
"""

from __future__ import annotations

import http.client
import re
import secrets
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml
from helpers import (
    CURL_HINT,
    ExporterProcess,
    PrometheusProcess,
    by_label,
    curl,
    http_get,
    make_certificate,
    require_tool,
    value,
    wait_until,
)
from hostile_binrpc import Behaviour, HostileServer, Listener
from kamailio_harness import KamailioInstance

# -- the allowlist -------------------------------------------------------------------------------


class Forbidden:
    """Listeners where the exporter must never connect: TCP and UDP on one 127.0.0.1 port, and a
    unix socket outside the allowed directory. Next to them, allowed twins (another port, a
    socket inside the allowed directory) show that a connection would have been seen."""

    def __init__(self, workdir: Path) -> None:
        self.outside = HostileServer(workdir)
        self.inside = HostileServer(workdir / "allowed")
        (workdir / "allowed").mkdir()
        self.tcp: Listener = self.outside.listen(Behaviour.HEALTHY)
        self.unix: Listener = self.outside.listen(Behaviour.HEALTHY, unix=True)
        self.allowed_tcp: Listener = self.inside.listen(Behaviour.HEALTHY)
        self.allowed_unix: Listener = self.inside.listen(Behaviour.HEALTHY, unix=True)
        self.port = int(self.tcp.address.rsplit(":", 1)[1])
        self.allowed_port = int(self.allowed_tcp.address.rsplit(":", 1)[1])
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.setblocking(False)
        self.datagrams = 0

    def count_datagrams(self) -> int:
        while True:
            try:
                self.udp.recv(65536)
            except BlockingIOError:
                return self.datagrams
            self.datagrams += 1

    def close(self) -> None:
        self.udp.close()
        self.outside.stop()
        self.inside.stop()


@pytest.fixture(scope="module")
def forbidden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forbidden]:
    listeners = Forbidden(tmp_path_factory.mktemp("sec"))
    try:
        yield listeners
    finally:
        listeners.close()


@pytest.fixture(scope="module")
def guarded(
    forbidden: Forbidden, tmp_path_factory: pytest.TempPathFactory, kamailio: KamailioInstance
) -> Iterator[ExporterProcess]:
    """An exporter whose rules admit 127.0.0.1 on the allowed port only, the allowed directory,
    networks no target here resolves into, and names `local*` on the allowed port."""
    config = tmp_path_factory.mktemp("guarded") / "targets.toml"
    config.write_text(f"""
[[targets]]
name = "kam"
address = "{kamailio.unix}"

[[allow]]
address = "tcp:127.0.0.1/32:{forbidden.allowed_port}"

[[allow]]
address = "unix:{forbidden.inside.socket_dir}/*"

[[allow]]
address = "tcp:192.0.2.0/24:*"

[[allow]]
address = "udp:192.0.2.0/24:*"

[[allow]]
address = "tcp:[fd00::/64]:*"

[[allow]]
address = "tcp:local*:{forbidden.allowed_port}"
""")
    process = ExporterProcess(config, "--log.level", "debug")
    try:
        yield process
    finally:
        process.stop()


def raw_probe(
    exporter: ExporterProcess, query: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """GET /probe?QUERY with the query exactly as given, no encoding added."""
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    try:
        connection.request("GET", f"/probe?{query}", headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read().decode()
    finally:
        connection.close()


def quoted(target: str) -> str:
    return "target=" + urllib.parse.quote(target, safe="")


def forbidden_targets(f: Forbidden) -> list[str]:
    """Every spelling of a forbidden address, as the query string to send."""
    p, q = f.port, f.allowed_port
    unix, inside = str(f.unix.path), f.inside.socket_dir
    outside_name = Path(unix).name
    plain = [
        f"tcp:127.0.0.1:{p}",
        f"127.0.0.1:{p}",
        f"udp:127.0.0.1:{p}",
        f"TCP:127.0.0.1:{p}",
        # names that resolve outside every network rule, or match no rule on this port
        f"tcp:localhost:{p}",
        f"tcp:LOCALHOST:{p}",
        f"udp:localhost:{p}",
        f"localhost:{p}",
        # numeric forms the C library reads as 127.0.0.1
        f"tcp:127.1:{p}",
        f"tcp:2130706433:{p}",
        f"tcp:0x7f000001:{p}",
        f"tcp:0177.0.0.1:{p}",
        f"tcp:127.000.000.001:{p}",
        f"tcp:0x7f.1:{p}",
        # IPv6 forms of the same address, and of other loopbacks and wildcards
        f"tcp:[::ffff:127.0.0.1]:{p}",
        f"tcp:[::ffff:7f00:1]:{p}",
        f"tcp:[0:0:0:0:0:ffff:7f00:1]:{p}",
        f"tcp:[::127.0.0.1]:{p}",
        f"tcp:[::1]:{p}",
        f"tcp:[::]:{p}",
        f"tcp:0.0.0.0:{p}",
        f"tcp:[fe80::1%lo]:{p}",
        f"tcp:[::ffff:127.0.0.1%lo]:{q}",
        f"tcp:[fd00::1%lo]:{p}",
        # an allowed address with something after it
        f"tcp:127.0.0.1:{q}:{p}",
        f"tcp:127.0.0.1:{q}/{p}",
        f"tcp:127.0.0.1:{q}#{p}",
        f"tcp:127.0.0.1:{q}\r\nX: {p}",
        f"tcp:127.0.0.1:{q}\x00{p}",
        f"tcp:127.0.0.1:+{p}",
        f"tcp:127.0.0.1: {p}",
        f"tcp:127.0.0.1:{q} ",
        "tcp:\uff11\uff12\uff17.\uff10.\uff10.\uff11:" + str(p),  # full-width digits
        # unix paths outside the allowed directory, directly or by '..' and friends
        f"unix:{unix}",
        unix,
        f"unixs:{unix}",
        f"unixd:{unix}",
        f"unix:{inside}/../{outside_name}",
        f"unix:{inside}/./../{outside_name}",
        f"unix:{inside}/x/../../{outside_name}",
        f"unix:{inside}//../{outside_name}",
        f"unix:{inside}/..",
        f"unix:{inside}/",
        # over-long values
        "x" * 5000,
        f"tcp:127.0.0.1:{p}" + " " * 2000,
        "tcp:" + "a" * 300 + f":{p}",
        f"unix:{inside}/" + "a" * 200,
    ]
    encoded = [
        # encoded once more than a scraper does: the server decodes once, the exporter once more
        f"target=tcp%253A127.0.0.1%253A{p}",
        f"target=tcp%25253A127.0.0.1%25253A{p}",
        f"target=tcp%3A127.0.0.1%3A{p}",
        f"target=tcp:127.0.0.1%253A{p}",
        f"target=unix:{inside}/%252e%252e/{outside_name}",
        f"target=unix:{inside}/%2e%2e/{outside_name}",
        f"target=unix:{inside}%252F..%252F{outside_name}",
        f"target=tcp%253A127.0.0.1%253A{q}%2500",
        f"target=tcp%253A%255B%253A%253Affff%253A127.0.0.1%255D%253A{p}",
    ]
    return [quoted(t) for t in plain] + encoded


def test_no_spelling_of_a_forbidden_address_gets_a_connection(
    guarded: ExporterProcess, forbidden: Forbidden
) -> None:
    answers = []
    for query in forbidden_targets(forbidden):
        status, headers, body = raw_probe(guarded, query)
        answers.append((query, status))
        assert status in (400, 403), (query, status, body)
        assert headers["Content-Type"].startswith("text/plain")
        assert len(body) < 400, (query, body)  # a one-line reason, not the input echoed back
        assert body.count("\n") == 1, (query, body)
    assert forbidden.tcp.accepted == 0
    assert forbidden.unix.accepted == 0
    assert forbidden.count_datagrams() == 0
    _, _, metrics = guarded.get("/metrics")
    rejected = value(metrics, "kamailio_exporter_probes_rejected_total", reason="forbidden")
    bad = value(metrics, "kamailio_exporter_probes_rejected_total", reason="bad_request")
    assert (rejected or 0) + (bad or 0) == len(answers)
    assert "tcp:127.0.0.1" not in metrics  # no target reaches the exporter's own metrics

    # The twins on allowed addresses do see the exporter: the counting works.
    mapped = f"tcp:[::ffff:127.0.0.1]:{forbidden.allowed_port}"
    for target in (forbidden.allowed_tcp.address, mapped, forbidden.allowed_unix.address):
        status, _, body = raw_probe(guarded, quoted(target))
        assert status == 200
        assert value(body, "kamailio_up") == 1.0, (target, body)
    assert forbidden.allowed_tcp.accepted >= 1
    assert forbidden.allowed_unix.accepted == 1
    assert forbidden.tcp.accepted == 0


def test_a_refusal_does_not_tell_what_a_name_resolves_to(guarded: ExporterProcess) -> None:
    # localhost resolves to 127.0.0.1, outside every network rule: the client learns only that
    # the name is not allowed, in the words used for a name no rule could match without a lookup
    # (and for one that does not resolve).
    status, _, body = raw_probe(guarded, quoted("tcp:localhost:2046"))
    assert status == 403
    assert body == 'target "tcp:localhost:2046": no allow rule matches this host name\n'
    _, _, page = guarded.get("/")  # the status page is public too: it shows what the client saw
    assert "tcp:localhost:2046" in page
    assert "resolves" not in page
    # The exporter's log tells the operator.
    assert re.search(
        r"target rejected: .*localhost:2046.* resolves to [^ ]*127\.0\.0\.1", guarded.log()
    )


def _raw_get(exporter: ExporterProcess, path_and_query: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    try:
        connection.request("GET", path_and_query)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_numbers_in_parameters_and_headers_are_ascii_decimals_only(
    guarded: ExporterProcess, forbidden: Forbidden
) -> None:
    status, _, body = raw_probe(guarded, quoted(forbidden.allowed_tcp.address))
    assert status == 200
    log_before = guarded.log()
    # int() and str.isdigit() take all of these; a probe id is ASCII digits only.
    for probe_id in (
        "%C2%B2",
        "%D9%A3",
        "%EF%BC%91",
        "+1",
        "-1",
        "%201",
        "1%20",
        "1_0",
        "0x1",
        "1e3",
    ):
        status, body = _raw_get(guarded, f"/logs?id={probe_id}")
        assert status == 400, (probe_id, status, body)
        assert body == "'id' must be a probe number\n"
    assert _raw_get(guarded, "/logs?id=" + "9" * 1000)[0] == 400
    assert _raw_get(guarded, "/logs?id=999999")[0] == 404
    # float() takes these too; the scrape timeout header is an ASCII decimal number (the
    # whitespace around a header's value is not part of it: HTTP strips it).
    allowed = quoted(forbidden.allowed_tcp.address)
    for header in ("5 5", "1_0", "\xb2", "inf", "nan", "1e999", "0"):
        status, _, body = raw_probe(
            guarded, allowed, {"X-Prometheus-Scrape-Timeout-Seconds": header}
        )
        assert status == 400, (header, status, body)
    status, _, body = raw_probe(guarded, allowed, {"X-Prometheus-Scrape-Timeout-Seconds": "4.5"})
    assert status == 200
    assert value(body, "kamailio_up") == 1.0
    # No request above was an error of the exporter's: no traceback, no error line.
    new_log = guarded.log()[len(log_before) :]
    assert "Traceback" not in new_log
    assert "level=error" not in new_log


def test_module_and_header_values_are_limited_and_not_echoed(
    guarded: ExporterProcess, forbidden: Forbidden
) -> None:
    allowed = quoted(forbidden.allowed_tcp.address)
    cases = [
        (f"{allowed}&module={'m' * 2000}", {}),
        (f"{allowed}&module=..%2F..%2Fetc", {}),
        (f"{allowed}&debug={'t' * 2000}", {}),
        (f"{allowed}&{allowed}", {}),
        ("&".join([allowed] * 1000), {}),
        (allowed, {"X-Prometheus-Scrape-Timeout-Seconds": "9" * 5000}),
        (allowed, {"X-Prometheus-Scrape-Timeout-Seconds": "nan"}),
        (allowed, {"X-Prometheus-Scrape-Timeout-Seconds": "-1"}),
    ]
    for query, headers in cases:
        status, _, body = raw_probe(guarded, query, headers)
        assert status == 400, (query[:80], status, body)
        assert len(body) < 300, body
    # Beyond the HTTP server's own limits: refused by aiohttp before any handler.
    status, _, _ = raw_probe(guarded, allowed, {"X-Padding": "p" * 20000})
    assert status in (400, 431)
    status, _, _ = raw_probe(guarded, allowed + "&pad=" + "p" * 100_000)
    assert status in (400, 414)
    status, _, body = raw_probe(guarded, allowed)
    assert status == 200, body  # and the exporter still serves


def test_user_supplied_text_reaches_html_escaped_only(
    guarded: ExporterProcess, forbidden: Forbidden
) -> None:
    inside = forbidden.inside.socket_dir
    # An allowed (nonexistent) socket whose name is markup: the probe fails at connect and the
    # landing page lists it.
    payload = '"><script>alert(1)<script><b>x<b>.sock'
    status, _, body = raw_probe(guarded, quoted(f"unix:{inside}/{payload}"))
    assert status == 200
    assert value(body, "kamailio_probe_failure_info", stage="connect") == 1.0
    for query in (quoted("<script>alert(3)</script>"), quoted(f"unix:{inside}/<b>x</b>")):
        raw_probe(guarded, query)
    status, headers, page = guarded.get("/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;script&gt;&lt;b&gt;" in page
    assert not re.search(r"<(script|b>)", page, re.IGNORECASE)
    # Everything else that can carry user text is plain text or JSON, never HTML.
    for path, params in (
        ("/logs", {"target": f"unix:{inside}/{payload}"}),
        ("/logs", {"target": "<script>"}),
        ("/config", {}),
        ("/sd", {}),
        ("/probe", {"target": "<script>"}),
        ("/nope<script>", {}),
    ):
        _, headers, _ = guarded.get(path, **params)
        assert not headers["Content-Type"].startswith("text/html"), path


# -- TLS and basic auth --------------------------------------------------------------------------

PASSWORD = "pw-" + secrets.token_urlsafe(12)
URL_PASSWORD = "hunter2-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def tls_exporter(
    kamailio: KamailioInstance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(workdir)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config = workdir / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    config = workdir / "targets.toml"
    config.write_text(f"""
[[targets]]
name = "kam"
address = "{kamailio.tcp}"

[[targets]]
name = "with-secret"
address = "{kamailio.unix}"
xhttp_prom_url = "http://scraper:{URL_PASSWORD}@127.0.0.1:1/metrics"
""")
    process = ExporterProcess(
        config,
        "--web.config.file",
        str(web_config),
        "--log.level",
        "debug",
        "--log.format",
        "json",
        scheme="https",
    )
    process.cert = cert  # type: ignore[attr-defined]
    process.hashed = hashed  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.stop()


def test_basic_auth_policy_with_curl(tls_exporter: ExporterProcess) -> None:
    require_tool("curl", CURL_HINT)
    url = tls_exporter.url
    tls = ["--cacert", str(tls_exporter.cert)]  # type: ignore[attr-defined]
    good = ["-u", f"prometheus:{PASSWORD}"]
    # Health endpoints are open (documented: Kubernetes probes carry no credentials)...
    assert curl(*tls, f"{url}/-/healthy")[0] == 200
    assert curl(*tls, f"{url}/-/ready")[0] == 200
    # ...everything else asks, whatever the spelling of the path.
    for path in (
        "/",
        "/metrics",
        "/probe?target=kam",
        "/probe?target=kam&debug=true",
        "/sd",
        "/config",
        "/logs?id=1",
        "/-/healthy/../metrics",
        "//metrics",
        "/-/ready/../config",
        "/%2D/healthy/../../metrics",
    ):
        code, _ = curl(*tls, "--path-as-is", f"{url}{path}")
        assert code == 401, path
    for wrong in (
        f"prometheus:{PASSWORD.upper()}",
        f"Prometheus:{PASSWORD}",
        f"prometheus:{PASSWORD}x",
        f"prometheus:{PASSWORD[:-1]}",
        "prometheus:",
        f":{PASSWORD}",
    ):
        assert curl(*tls, "-u", wrong, f"{url}/metrics")[0] == 401, wrong
    code, headers = curl(*tls, "-D", "-", "-o", "/dev/null", f"{url}/metrics")
    assert code == 401
    assert re.search(r"(?im)^www-authenticate: basic", headers)
    assert re.search(r"(?im)^x-content-type-options: nosniff", headers)
    assert curl(*tls, "-X", "POST", f"{url}/-/reload")[0] == 401
    assert curl(*tls, *good, "-X", "POST", f"{url}/-/reload")[0] == 200
    code, body = curl(*tls, *good, f"{url}/probe?target=kam")
    assert code == 200
    assert "kamailio_up 1" in body
    # TLS only: plain HTTP on the same port gets no HTTP answer.
    assert curl(f"http://127.0.0.1:{tls_exporter.port}/-/healthy")[0] in (0, 400)


@pytest.mark.slow
def test_prometheus_scrapes_through_tls_and_basic_auth(
    tls_exporter: ExporterProcess, tmp_path: Path
) -> None:
    cert = tls_exporter.cert  # type: ignore[attr-defined]
    address = f"127.0.0.1:{tls_exporter.port}"

    def job(name: str, password: str | None, **extra: object) -> dict[str, object]:
        spec: dict[str, object] = {
            "job_name": name,
            "scheme": "https",
            "tls_config": {"ca_file": str(cert)},
            "static_configs": [{"targets": [address]}],
            **extra,
        }
        if password is not None:
            spec["basic_auth"] = {"username": "prometheus", "password": password}
        return spec

    probe_job = job(
        "kamailio",
        PASSWORD,
        metrics_path="/probe",
        static_configs=[{"targets": ["kam"]}],
        relabel_configs=[
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": address},
        ],
    )
    config = yaml.safe_dump(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                job("exporter", PASSWORD),
                probe_job,
                job("wrong-password", PASSWORD + "x"),
                job("no-auth", None),
            ],
        }
    )
    prometheus = PrometheusProcess(tmp_path / "prometheus", config)
    try:

        def scraped() -> dict[str, float] | None:
            ups = by_label(prometheus.query("up"), "job")
            return ups if len(ups) == 4 else None

        ups = wait_until(scraped, 15.0, "every job scraped once", interval=0.2)
        assert ups == {"exporter": 1.0, "kamailio": 1.0, "wrong-password": 0.0, "no-auth": 0.0}
        wait_until(
            lambda: prometheus.query('kamailio_up{instance="kam"} == 1'),
            5.0,
            "kamailio_up through TLS and basic auth",
        )
        errors = {t["labels"]["job"]: t["lastError"] for t in prometheus.targets()}
        assert "401" in errors["wrong-password"]
        assert "401" in errors["no-auth"]
        assert errors["exporter"] == ""
        assert errors["kamailio"] == ""
    finally:
        prometheus.stop()


def test_no_secret_in_logs_debug_output_or_pages(tls_exporter: ExporterProcess) -> None:
    require_tool("curl", CURL_HINT)
    url = tls_exporter.url
    tls = ["--cacert", str(tls_exporter.cert), "-u", f"prometheus:{PASSWORD}"]  # type: ignore[attr-defined]
    assert curl(*tls, "-u", "prometheus:not-the-password", f"{url}/metrics")[0] == 401
    pages = [
        curl(*tls, f"{url}{path}")
        for path in (
            "/probe?target=with-secret&debug=true",
            "/probe?target=with-secret",
            "/",
            "/config",
            "/sd",
            "/logs?target=with-secret",
            "/metrics",
        )
    ]
    assert all(code == 200 for code, _ in pages), [code for code, _ in pages]
    debug = pages[0][1]
    assert "xhttp_prom" in debug  # the failing merge is reported...
    assert "<secret>@127.0.0.1:1" in debug  # ...with the URL's credentials hidden
    log = tls_exporter.log()
    hashed = tls_exporter.hashed  # type: ignore[attr-defined]
    for secret in (PASSWORD, URL_PASSWORD, hashed, hashed[7:], "not-the-password"):
        assert secret not in log
        for _, body in pages:
            assert secret not in body
    assert any(line.get("level") == "debug" for line in tls_exporter.log_lines())


def test_plain_http_health_policy_without_a_web_config(guarded: ExporterProcess) -> None:
    for path in ("/-/healthy", "/-/ready"):
        status, _, _ = guarded.get(path)
        assert status == 200
    status, _, _ = http_get(f"{guarded.url}/-/reload")  # reload is POST only
    assert status == 405
