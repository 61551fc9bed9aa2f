"""The HTTP server against raw clients (Slowloris, idle keep-alive, connection floods), socket
activation, the route prefix, config auto-reload and environment variables, all on the real
exporter process on 127.0.0.1.

Figures (seconds from the last byte a client sent to the server's close) are printed: run with
`pytest -s tests/test_server.py` to see them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import ROOT, ExporterProcess, http_get, make_certificate, value, wait_until
from kamailio_harness import free_ports

from probe_exporter.cli import build_parser, parse_args
from probe_exporter.flags import legacy_env_names

COMMAND = [sys.executable, "-m", "probe_exporter.cli"]
SLACK = 1.0  # the server's close may come this much after its deadline
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
FULL_REQUEST = b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
UNIT_DIR = ROOT / "deploy" / "systemd"


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    # A closed port: probes fail fast at stage connect; the tests here are about HTTP.
    (port,) = free_ports("tcp")
    path = tmp_path / "targets.toml"
    path.write_text(f'[[targets]]\nname = "a"\naddress = "tcp:127.0.0.1:{port}"\n')
    return path


@pytest.fixture
def exporters() -> Iterator[list[ExporterProcess]]:
    started: list[ExporterProcess] = []
    yield started
    for exporter in started:
        exporter.stop()


def limit_nofile(limit: int) -> Callable[[], None]:
    """`ulimit -n limit` for a child process (soft and hard)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(True)
    return sock


def closed_after(socks: list[socket.socket], since: float, bound: float) -> list[float]:
    """Waits (at most `bound` seconds from `since`) for the server to close each socket; the
    seconds from `since` to each close. Data the server sends first (a 408 or a response) is
    read and ignored."""
    closed: list[float] = []
    for sock in socks:
        while True:
            left = since + bound - time.monotonic()
            if left <= 0:
                raise AssertionError(f"a connection is still open {bound:g} s later")
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            except TimeoutError:
                continue
            if not data:
                closed.append(time.monotonic() - since)
                break
        sock.close()
    return closed


def trickle(port: int, interval: float, bound: float) -> float:
    """Sends a request head a byte every `interval` seconds; the seconds until the server
    closed the connection."""
    sock = connect(port)
    sock.settimeout(interval)
    started = time.monotonic()
    try:
        for byte in HALF_REQUEST * 10:
            if time.monotonic() - started > bound:
                break
            try:
                sock.sendall(bytes([byte]))
                if not sock.recv(1):
                    return time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - started
    finally:
        sock.close()
    raise AssertionError(f"a trickling client is still connected after {bound:g} s")


def start_exporter(
    config: Path, *args: str, nofile: int | None = None, env: dict[str, str] | None = None
) -> ExporterProcess:
    """The exporter logging JSON, optionally with a lowered open file limit."""
    return ExporterProcess(
        config,
        "--log.format",
        "json",
        *args,
        env=env,
        preexec_fn=limit_nofile(nofile) if nofile else None,
    )


# -- Slowloris ---------------------------------------------------------------------------------


def test_half_sent_silent_and_idle_connections_are_closed(
    targets: Path, exporters: list[ExporterProcess]
) -> None:
    header_timeout, idle_timeout = 1.0, 2.0
    exporter = start_exporter(
        targets,
        "--web.read-header-timeout",
        str(header_timeout),
        "--web.idle-timeout",
        str(idle_timeout),
    )
    exporters.append(exporter)
    silent = [connect(exporter.port) for _ in range(10)]
    half = [connect(exporter.port) for _ in range(10)]
    for sock in half:
        sock.sendall(HALF_REQUEST)
    sent = time.monotonic()
    # A trickle: a byte every 0.3 s keeps the connection busy, never completes the head.
    trickle_closed = trickle(exporter.port, 0.3, header_timeout + SLACK)
    figures_half = closed_after(silent + half, sent, header_timeout + SLACK)
    # Keep-alive connections after a complete request: open until the idle timeout.
    idle = [connect(exporter.port) for _ in range(5)]
    for sock in idle:
        sock.sendall(FULL_REQUEST)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    answered = time.monotonic()
    figures_idle = closed_after(idle, answered, idle_timeout + SLACK)
    assert min(figures_idle) >= idle_timeout - 0.1, "idle connections closed before the timeout"
    print(
        f"\nheader timeout {header_timeout} s: silent/half-sent closed after "
        f"{min(figures_half):.2f}-{max(figures_half):.2f} s, a trickling client after "
        f"{trickle_closed:.2f} s; idle timeout {idle_timeout} s: closed after "
        f"{min(figures_idle):.2f}-{max(figures_idle):.2f} s"
    )
    assert trickle_closed <= header_timeout + SLACK
    assert exporter.get("/-/healthy")[0] == 200


def test_held_connections_beyond_the_cap_never_stop_scrapes(
    targets: Path, exporters: list[ExporterProcess]
) -> None:
    cap, held, header_timeout = 64, 100, 6.0
    exporter = start_exporter(
        targets,
        "--web.max-connections",
        str(cap),
        "--pool.max-connections",
        "16",
        "--pool.max-adhoc-connections",
        "8",
        "--web.read-header-timeout",
        str(header_timeout),
        nofile=256,
    )
    exporters.append(exporter)
    baseline = exporter.fd_count()
    socks = []
    for _ in range(held):
        sock = connect(exporter.port)
        sock.sendall(HALF_REQUEST)
        socks.append(sock)
    sent = time.monotonic()
    time.sleep(0.3)
    fds_held = exporter.fd_count()
    answers = []
    for path in ("/metrics", "/-/healthy", "/metrics"):
        started = time.monotonic()
        status, _, body = http_get(exporter.url + path, timeout=5)
        answers.append(time.monotonic() - started)
        assert status == 200
    # The oldest held connections made room: the exporter never held more than the cap.
    assert fds_held <= baseline + cap, (baseline, fds_held)
    figures = closed_after(socks, sent, header_timeout + SLACK)
    print(
        f"\nopen file limit 256, cap {cap}, {held} half-sent connections: exporter descriptors "
        f"{baseline} -> {fds_held}; scrapes answered in {min(answers) * 1000:.0f}-"
        f"{max(answers) * 1000:.0f} ms; held connections closed after "
        f"{min(figures):.2f}-{max(figures):.2f} s (header timeout {header_timeout} s)"
    )
    assert max(figures) <= header_timeout + SLACK
    warnings = [
        line["msg"] for line in exporter.log_lines() if "open file limit 256" in line["msg"]
    ]
    # 64 clients + 16 + 8 pooled + 256 merged-source connections + 64 spare do not fit in 256.
    assert any("64 HTTP client connections + 24 pooled" in msg for msg in warnings), warnings
    assert "kamailio_exporter" in body


def test_at_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once(
    tmp_path: Path, exporters: list[ExporterProcess]
) -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # accepts in the kernel and never answers: probes run to their deadline
    config = tmp_path / "targets.toml"
    config.write_text(
        f'[[targets]]\nname = "hung"\naddress = "tcp:127.0.0.1:{hung.getsockname()[1]}"\n'
        "timeout = 3.0\n"
    )
    try:
        exporter = start_exporter(config, "--web.max-connections", "4")
        exporters.append(exporter)
        busy = [connect(exporter.port) for _ in range(4)]
        for sock in busy:
            sock.sendall(b"GET /probe?target=hung HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.5)
        refused = connect(exporter.port)
        started = time.monotonic()
        closed = closed_after([refused], started, 1.0)
        for sock in busy:  # the probes in flight were not disturbed
            sock.settimeout(10)
            answer = sock.recv(65536)
            while b"kamailio_up" not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            sock.close()
        print(f"\ncap 4, 4 probes in flight: a fifth connection closed after {closed[0]:.3f} s")
        assert exporter.get("/-/healthy")[0] == 200
    finally:
        hung.close()


def test_the_cap_is_sized_from_the_open_file_limit(
    targets: Path, exporters: list[ExporterProcess]
) -> None:
    exporter = start_exporter(targets, nofile=4096)
    exporters.append(exporter)
    lines = [line["msg"] for line in exporter.log_lines()]
    # 4096 - 640 (pool defaults: 512 listed, 128 ad hoc) - 256 (merged sources) - 64 spare
    # = 3136, capped at 1024.
    assert any(msg.startswith("HTTP limits: 1024 client connections") for msg in lines), lines
    assert not any("cannot hold" in msg for msg in lines), lines
    exporter.stop()
    small = start_exporter(
        targets, "--pool.max-connections", "8", "--pool.max-adhoc-connections", "8", nofile=512
    )
    exporters.append(small)
    lines = [line["msg"] for line in small.log_lines()]
    # 512 - 16 - 256 - 64
    assert any(msg.startswith("HTTP limits: 176 client connections") for msg in lines), lines
    assert not any("cannot hold" in msg for msg in lines), lines


@pytest.mark.real
def test_a_tls_handshake_never_started_is_closed_like_a_head(
    targets: Path, tmp_path: Path, exporters: list[ExporterProcess]
) -> None:
    cert, key = make_certificate(tmp_path)
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    exporter = start_exporter(
        targets,
        "--web.config.file",
        str(web_config),
        "--web.read-header-timeout",
        "1",
        "--web.max-connections",
        "8",
    )
    exporters.append(exporter)
    silent = [connect(exporter.port) for _ in range(12)]
    opened = time.monotonic()
    context = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(FULL_REQUEST)
        assert tls.recv(65536).startswith(b"HTTP/1.1 200")
    figures = closed_after(silent, opened, 1.0 + SLACK)
    print(f"\nTLS, header timeout 1 s: silent connections closed after {max(figures):.2f} s")


# -- socket activation -----------------------------------------------------------------------


def test_systemd_socket_activation(targets: Path, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()

    def as_systemd_does() -> None:
        # sd_listen_fds(3): the sockets from fd 3 on, LISTEN_PID the service's own pid.
        os.dup2(fd, 3)
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())

    log_path = tmp_path / "exporter.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*COMMAND, "--config.file", str(targets), "--web.systemd-socket"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(3,),
            preexec_fn=as_systemd_does,
        )
    listener.close()  # the exporter holds it now
    try:
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text()
            return http_get(url + "/-/healthy", timeout=2)[0] == 200

        wait_until(healthy, 20, "the exporter on the socket from systemd", interval=0.1)
        assert http_get(url + "/metrics")[0] == 200
        assert f"listening on 127.0.0.1:{port} from systemd" in log_path.read_text()
    finally:
        process.terminate()
        assert process.wait(20) == 0
    # Without sockets from systemd (LISTEN_PID another process's): a clear error, exit 1.
    result = subprocess.run(
        [*COMMAND, "--config.file", str(targets), "--web.systemd-socket"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"},
    )
    assert result.returncode == 1
    assert "no sockets from systemd: LISTEN_PID is 1" in result.stderr


@pytest.mark.real
def test_systemd_socket_unit_verifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("systemd-analyze is not installed: apt-get install -y systemd")
        pytest.skip("systemd-analyze is not installed")
    for unit in ("kamailio-probe-exporter.socket", "kamailio-probe-exporter.service"):
        text = (UNIT_DIR / unit).read_text()
        (tmp_path / unit).write_text(
            text.replace("/opt/kamailio-probe-exporter/bin/kamailio-probe-exporter", "/bin/true")
        )
    result = subprocess.run(
        [tool, "verify", str(tmp_path / "kamailio-probe-exporter.socket")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    service = (UNIT_DIR / "kamailio-probe-exporter.service").read_text()
    assert re.search(r"^LimitNOFILE=\d+$", service, re.M)


# -- route prefix ------------------------------------------------------------------------------


def test_route_prefix_from_the_external_url_keeps_every_link_working(
    targets: Path, exporters: list[ExporterProcess]
) -> None:
    exporter = start_exporter(targets, "--web.external-url", "https://proxy.example/kamailio/")
    exporters.append(exporter)
    assert exporter.get("/metrics")[0] == 404
    status, _, _ = http_get(exporter.url + "/kamailio/metrics")
    assert status == 200
    for bare in ("/", "/kamailio"):
        request = urllib.request.Request(exporter.url + bare)
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(request, timeout=5)
        assert redirect.value.code == 302
        assert redirect.value.headers["Location"] == "/kamailio/"
    # Every link of the landing page, resolved as a browser would, answers.
    exporter.get("/kamailio/probe", target="a")  # a recent probe for the page to link to
    status, _, page = http_get(exporter.url + "/kamailio/")
    assert status == 200
    links = re.findall(r'href="([^"]+)"', page)
    assert any(link.startswith("logs?id=") for link in links), links
    for link in links:
        url = urllib.parse.urljoin(exporter.url + "/kamailio/", link.replace("&amp;", "&"))
        assert url.startswith(exporter.url + "/kamailio/"), url
        assert http_get(url)[0] == 200, url
    other = start_exporter(targets, "--web.route-prefix", "/x/y/")
    exporters.append(other)
    assert other.get("/x/y/-/healthy")[0] == 200
    assert other.get("/-/healthy")[0] == 404


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# -- config auto-reload ----------------------------------------------------------------------


def test_config_auto_reload(targets: Path, exporters: list[ExporterProcess]) -> None:
    interval = 0.5
    exporter = start_exporter(targets, "--config.auto-reload-interval", str(interval))
    exporters.append(exporter)
    assert exporter.get("/probe", target="b")[0] == 403
    original = targets.read_text()
    targets.write_text(original + '[[targets]]\nname = "b"\naddress = "tcp:127.0.0.1:1"\n')
    changed = time.monotonic()
    wait_until(lambda: exporter.get("/probe", target="b")[0] == 200, interval + 2, "a reload")
    served = time.monotonic() - changed

    def reload_state() -> tuple[float | None, float | None]:
        text = exporter.get("/metrics")[2]
        return (
            value(text, "kamailio_exporter_config_last_reload_successful"),
            value(text, "kamailio_exporter_config_last_reload_success_timestamp_seconds"),
        )

    ok, stamp = reload_state()
    assert ok == 1
    targets.write_text("[[targets]\n")  # broken: the running config stays
    wait_until(lambda: reload_state()[0] == 0, interval + 2, "the failed reload")
    time.sleep(interval * 6)  # unchanged: not retried
    failures = [
        line for line in exporter.log_lines() if line["msg"].startswith("config load failed")
    ]
    assert len(failures) == 1, failures
    assert exporter.get("/probe", target="b")[0] == 200
    targets.write_text(original)
    wait_until(lambda: reload_state()[0] == 1, interval + 2, "the reload of the fixed file")
    assert exporter.get("/probe", target="b")[0] == 403
    assert (reload_state()[1] or 0) > (stamp or 0)
    print(f"\nauto-reload every {interval} s: a new target served {served:.2f} s after the write")
    assert served <= interval + SLACK


# -- environment variables -------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("LOG_LEVEL", "verbose", "argument --log.level: invalid choice: 'verbose'"),
        ("LOG_FORMAT", "xml", "argument --log.format: invalid choice: 'xml'"),
        ("TIMEOUT_OFFSET", "-1", "argument --timeout-offset: must not be negative"),
        ("WEB_MAX_CONNECTIONS", "many", "argument --web.max-connections: invalid"),
        ("WEB_SYSTEMD_SOCKET", "yes", "must be true or false"),
        ("WEB_ROUTE_PREFIX", "x", "argument --web.route-prefix: must start with '/'"),
    ],
)
def test_invalid_environment_values_exit_2_naming_the_variable(
    targets: Path, name: str, text: str, message: str
) -> None:
    result = run_cli(
        "--config.file", str(targets), "--config.check", env={f"KAMAILIO_EXPORTER_{name}": text}
    )
    assert result.returncode == 2, result.stderr
    assert f"environment variable KAMAILIO_EXPORTER_{name}={text!r}" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_values_are_case_insensitive_where_flags_are(targets: Path) -> None:
    broken = targets.with_name("broken.toml")
    broken.write_text("[[targets]\n")
    result = run_cli(
        "--config.file",
        str(broken),
        "--config.check",
        env={"KAMAILIO_EXPORTER_LOG_LEVEL": "DEBUG", "KAMAILIO_EXPORTER_LOG_FORMAT": "JSON"},
    )
    assert result.returncode == 1
    assert json.loads(result.stderr.splitlines()[-1])["level"] == "error"  # JSON, not logfmt
    flags = run_cli("--config.file", str(targets), "--config.check", "--log.level=DEBUG", env={})
    assert flags.returncode == 0, flags.stderr
    saved = {k: os.environ.pop(k, None) for k in ("KAMAILIO_EXPORTER_LOG_LEVEL",)}
    os.environ["KAMAILIO_EXPORTER_LOG_LEVEL"] = "Warn"
    try:
        assert parse_args([]).log_level == "warn"
        assert parse_args(["--log.level", "ERROR"]).log_level == "error"  # the flag wins
        assert parse_args(["--log.prober", "DEBUG"]).log_prober == "debug"
    finally:
        os.environ.pop("KAMAILIO_EXPORTER_LOG_LEVEL")
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def test_variables_of_the_older_exporter_get_one_warning(targets: Path) -> None:
    hostname = socket.gethostname()
    result = run_cli(
        "--config.file",
        str(targets),
        "--config.check",
        env={"BIND_PORT": "9494", "SOCKET_PATH": "/run/kamailio/ctl", "DEBUG": "true"},
    )
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "level=warn" in line]
    assert len(warnings) == 1, result.stderr
    assert "SOCKET_PATH, BIND_PORT, DEBUG" in warnings[0]
    assert "docs/migrating.md" in warnings[0]
    clean = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT", "DEBUG")}
    assert legacy_env_names({**clean, "HOST": "10.0.0.5", "PORT": "3012"}, hostname) == [
        "HOST",
        "PORT",
    ]
    # Generic names set by others: a shell's HOST (this machine), a platform's PORT, DEBUG.
    assert legacy_env_names({"HOST": hostname, "PORT": "8080"}, hostname) == []
    assert legacy_env_names({"PORT": "8080", "DEBUG": "1"}, hostname) == []
    quiet = run_cli(
        "--config.file", str(targets), "--config.check", env={"PORT": "8080", "DEBUG": "1"}
    )
    assert "level=warn" not in quiet.stderr


def test_every_flag_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Command line") : readme.index("Each flag can also be set")]
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    missing = sorted(flag for flag in flags if f"`{flag}`" not in table)
    assert not missing, f"flags missing from README's Command line table: {missing}"
