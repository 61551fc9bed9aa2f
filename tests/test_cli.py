"""The command as operators run it: flags, env vars, TLS and basic auth, signals."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from helpers import curl, make_certificate
from kamailio_harness import KamailioInstance, free_ports

from probe_exporter.cli import parse_args
from probe_exporter.flags import split_listen_address

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "probe_exporter.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


def test_config_check_accepts_the_example_and_rejects_a_broken_file(tmp_path: Path) -> None:
    result = run_cli("--config.check", "--config.file", str(ROOT / "targets.toml"))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    broken = tmp_path / "targets.toml"
    broken.write_text("[[targets]]\nname = 'a'\naddress = 'tcp:127.0.0.1:99999'\n")
    result = run_cli("--config.check", "--config.file", str(broken))
    assert result.returncode == 1
    assert "targets[0].address" in result.stderr


def test_flags_come_from_the_environment_too() -> None:
    env = {
        "KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS": "127.0.0.1:1, [::1]:2",
        "KAMAILIO_EXPORTER_TIMEOUT_OFFSET": "0.25",
        "KAMAILIO_EXPORTER_PROBE_MAX_CONCURRENT": "7",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        args = parse_args([])
        assert args.listen == ["127.0.0.1:1", "[::1]:2"]
        assert args.timeout_offset == 0.25
        assert args.max_concurrent == 7
        assert parse_args(["--timeout-offset", "1"]).timeout_offset == 1.0  # flags win
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
    assert split_listen_address(":9494") == (None, 9494)
    assert split_listen_address("[::1]:9494") == ("::1", 9494)
    with pytest.raises(ValueError, match="listen address"):
        split_listen_address("9494")


def test_version_flag() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert "0.1.0" in result.stdout


def test_python_dash_m_runs_the_command() -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "probe_exporter", "--config.check", "--config.file", "targets.toml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("targets.toml: ok (")
    broken = subprocess.run(
        [sys.executable, "-m", "probe_exporter", "--config.file", "missing.toml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert broken.returncode == 1
    assert "missing.toml" in broken.stderr


class Exporter:
    """The exporter as a child process on a free loopback port, stopped by PID."""

    def __init__(self, *args: str, scheme: str = "http") -> None:
        (self.port,) = free_ports("tcp")
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*COMMAND, "--web.listen-address", f"127.0.0.1:{self.port}", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited: {self.process.stdout.read()}")  # type: ignore[union-attr]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError("exporter did not start listening")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return output


@pytest.fixture
def exporter_factory() -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    yield started
    for exporter in started:
        exporter.stop()


def test_tls_and_basic_auth_from_the_web_config(
    kamailio: KamailioInstance, tmp_path: Path, exporter_factory: list[Exporter]
) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    cert, key = make_certificate(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    targets = tmp_path / "targets.toml"
    targets.write_text(f'[[targets]]\nname = "kam"\naddress = "{kamailio.unix}"\n')
    exporter = Exporter(
        "--config.file", str(targets), "--web.config.file", str(web_config), scheme="https"
    )
    exporter_factory.append(exporter)
    tls = ["--cacert", str(cert)]
    code, body = curl(*tls, "-u", "prometheus:s3cret", f"{exporter.url}/probe?target=kam")
    assert code == 200
    assert "kamailio_up 1" in body
    assert curl(*tls, "-u", "prometheus:wrong", f"{exporter.url}/probe?target=kam")[0] == 401
    assert curl(*tls, f"{exporter.url}/metrics")[0] == 401
    assert curl(*tls, f"{exporter.url}/-/healthy")[0] == 200  # open for Kubernetes probes
    assert curl(f"http://127.0.0.1:{exporter.port}/-/healthy")[0] != 200  # TLS only
    output = exporter.stop()
    assert "s3cret" not in output
    assert hashed not in output


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_sighup_reloads_and_sigterm_drains(
    kamailio: KamailioInstance, tmp_path: Path, exporter_factory: list[Exporter]
) -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)  # accepts (in the kernel) and never answers
    targets = tmp_path / "targets.toml"
    targets.write_text(
        f'[[targets]]\nname = "kam"\naddress = "{kamailio.tcp}"\n'
        f'[[targets]]\nname = "hung"\naddress = "tcp:127.0.0.1:'
        f'{hung.getsockname()[1]}"\ntimeout = 2.0\n'
    )
    exporter = Exporter("--config.file", str(targets), "--log.format", "json")
    exporter_factory.append(exporter)
    try:
        assert get(f"{exporter.url}/probe?target=new")[0] == 403
        targets.write_text(
            targets.read_text() + f'[[targets]]\nname = "new"\naddress = "{kamailio.unix}"\n'
        )
        exporter.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while get(f"{exporter.url}/probe?target=new")[0] != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload the config"
            time.sleep(0.1)

        async def probe_then_terminate() -> tuple[int, str]:
            loop = asyncio.get_running_loop()
            in_flight = loop.run_in_executor(None, get, f"{exporter.url}/probe?target=hung")
            await asyncio.sleep(0.5)
            exporter.process.send_signal(signal.SIGTERM)
            return await in_flight

        status, body = asyncio.run(probe_then_terminate())
        assert status == 200  # the probe in flight finished despite SIGTERM
        assert "kamailio_up 0" in body
        assert exporter.process.wait(timeout=10) == 0
        lines = [json.loads(line) for line in exporter.stop().splitlines() if line.startswith("{")]
        assert any(
            line.get("target") == "hung" and line.get("module") == "default" for line in lines
        )
    finally:
        hung.close()
