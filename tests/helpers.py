"""Helpers shared by the tests that run the exporter and its peers as real processes.

ExporterProcess runs the `kamailio-probe-exporter` command on a free 127.0.0.1 port and watches
its file descriptors and memory; PrometheusProcess runs Debian's Prometheus against it. Both are
stopped by PID, log to files (a pipe nobody reads would stall a chatty process), and wait for
readiness within fixed bounds.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from kamailio_harness import free_ports
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
EXPORTER_COMMAND = [sys.executable, "-m", "probe_exporter.cli"]
PROMETHEUS_HINT = "apt-get install -y prometheus"
CURL_HINT = "apt-get install -y curl"
OPENSSL_HINT = "apt-get install -y openssl"
# pytest-aiohttp's `aiohttp_client` fixture
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
# targets.toml's modules of the in-process service tests: "default" (all collectors) and "fast"
TWO_MODULES = """\
[modules.default]
collectors = ["all"]
timeout = 3.0

[modules.fast]
collectors = ["stats"]
timeout = 1.0
"""


def require_tool(name: str, hint: str) -> str:
    """The path of `name`; skips the test when it is missing (fails with CI=true)."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed: {hint}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, valid for a day."""
    openssl = require_tool("openssl", OPENSSL_HINT)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def curl(*args: str) -> tuple[int, str]:
    """curl's status code and body (code 0: no HTTP answer at all)."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


# -- metrics text ------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value, None when there is no such sample."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


# -- HTTP ----------------------------------------------------------------------------------------


def http_get(
    url: str, *, timeout: float = 10.0, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of one request; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """Polls `condition` until it returns something true; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# -- processes -----------------------------------------------------------------------------------


class _Process:
    """A child process with its output in a file, stopped by PID (SIGTERM, then SIGKILL)."""

    name = "process"

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(command),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                preexec_fn=preexec_fn,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n" + self.log()[-3000:]
            )

    def stop(self, grace: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class ExporterProcess(_Process):
    """The exporter command on a free loopback port with `config`, plus any flags; as `user`
    when given."""

    name = "exporter"

    def __init__(
        self,
        config: Path,
        *args: str,
        scheme: str = "http",
        log_path: Path | None = None,
        ready_timeout: float = 20.0,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
        user: str | None = None,
    ) -> None:
        (self.port,) = free_ports("tcp")
        # As another user (root only): that user's group and no supplementary groups.
        as_user = (
            ["setpriv", f"--reuid={user}", f"--regid={pwd.getpwnam(user).pw_gid}", "--clear-groups"]
            if user
            else []
        )
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        super().__init__(
            [
                *as_user,
                *EXPORTER_COMMAND,
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{self.port}",
                *args,
            ],
            log_path or config.with_name(f"exporter-{self.port}.log"),
            env=env,
            preexec_fn=preexec_fn,
        )

        def listening() -> bool:
            self._check_running()
            return _port_open(self.port)

        wait_until(listening, ready_timeout, "the exporter to listen")

    def get(self, path: str, **params: str) -> tuple[int, dict[str, str], str]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return http_get(f"{self.url}{path}{query}")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/PID/status")

    def log_lines(self) -> list[dict[str, Any]]:
        """The log as JSON objects (run it with --log.format json)."""
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]


class PrometheusProcess(_Process):
    """Debian's Prometheus on a free loopback port with `config_text`, data in `workdir`."""

    name = "prometheus"

    def __init__(self, workdir: Path, config_text: str, *, ready_timeout: float = 30.0) -> None:
        binary = require_tool("prometheus", PROMETHEUS_HINT)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config_text)
        (self.port,) = free_ports("tcp")
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            workdir / "prometheus.log",
            cwd=workdir,
        )

        def ready() -> bool:
            self._check_running()
            return _port_open(self.port) and http_get(f"{self.url}/-/ready")[0] == 200

        wait_until(ready, ready_timeout, "Prometheus to be ready", interval=0.1)

    def api(self, path: str, **params: str) -> Any:
        status, _, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise AssertionError(f"Prometheus API {path} {params}: {status} {body[:500]}")
        return payload["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query: each series' labels (without __name__) -> value."""
        data = self.api("query", query=expr)
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
                r["value"][1]
            )
            for r in data["result"]
        }

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
        data = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}"
        )
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): [
                (float(t), float(v)) for t, v in r["values"]
            ]
            for r in data["result"]
        }

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])


def by_label(series: dict[tuple[tuple[str, str], ...], Any], label: str) -> dict[str, Any]:
    """Query results keyed by one label's value."""
    return {dict(labels).get(label, ""): result for labels, result in series.items()}


async def get_probe(client: TestClient[Any, Any], **params: str) -> tuple[int, str]:
    """GET /probe of an in-process exporter: (status, body)."""
    response = await client.get("/probe", params=params)
    return response.status, await response.text()


def timed_probe(exporter: ExporterProcess, target: str, **params: str) -> tuple[str, float]:
    """A /probe of the exporter process that must answer 200: its body and how long it took."""
    started = time.monotonic()
    status, _, body = exporter.get("/probe", target=target, **params)
    assert status == 200, body
    return body, time.monotonic() - started
