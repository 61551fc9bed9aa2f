"""The Python package: sdist and wheel, the wheel installed alone, the lowest allowed dependencies.

Slow tier: each test makes a fresh virtual environment and installs into it from the package
index (pip's cache makes reruns quicker).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import http_get, wait_until
from kamailio_harness import KamailioInstance, free_ports
from packaging.requirements import Requirement
from packaging.version import Version

from probe_exporter import __version__

pytestmark = [pytest.mark.slow, pytest.mark.real]  # builds, installs, runs pip and Kamailio

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What runs at the minimum versions: hermetic test files that import only the exporter's
# dependencies and the test tools below (others import linters and schema validators), and the
# service's real probes.
HERMETIC = [
    "tests/test_codec.py",
    "tests/test_collectors.py",
    "tests/test_exposition.py",
    "tests/test_config.py",
    "tests/test_merge.py",
    "tests/test_pool.py",
    "tests/test_webconfig.py",
]
REAL_PROBES = ["tests/test_service.py", "tests/test_http_sources.py"]
# The test extra's packages these tiers import (the rest lint, type-check or render charts).
TEST_TOOLS = {"pytest", "pytest-asyncio", "pytest-aiohttp", "pytest-timeout", "hypothesis"}
PIP_TIMEOUT = 600


def fresh_venv(path: Path) -> Path:
    venv.create(path, with_pip=True)
    return path / "bin"


def pip_install(bindir: Path, *args: str) -> None:
    result = subprocess.run(
        [str(bindir / "python"), "-m", "pip", "install", "-q", *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist, then the wheel built from that sdist, with the pinned build backend of .venv."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    files = sorted(path.name for path in dist.iterdir())
    python = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    assert files == [  # compiled with mypyc (setup.py): a wheel for this Python and platform
        f"kamailio_probe_exporter-{__version__}-{python}-{python}-{platform}.whl",
        f"kamailio_probe_exporter-{__version__}.tar.gz",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_holds_the_package_and_its_metadata(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(
            f"kamailio_probe_exporter-{__version__}.dist-info/METADATA"
        ).decode()
    assert "probe_exporter/healthcheck.py" in names
    assert "probe_exporter/binrpc/codec.py" in names
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert f"probe_exporter/binrpc/codec{suffix}" in names  # compiled, the source beside it
    assert not [name for name in names if name.startswith("tests/")]
    assert f"\nVersion: {__version__}\n" in metadata
    for dependency in PROJECT["dependencies"]:
        assert f"\nRequires-Dist: {dependency}\n" in metadata


def test_wheel_installed_alone_runs_and_probes_kamailio(
    dist: Path, kamailio: KamailioInstance, tmp_path: Path
) -> None:
    bindir = fresh_venv(tmp_path / "venv")
    (wheel,) = dist.glob("*.whl")
    pip_install(bindir, str(wheel))
    # Run from elsewhere than the checkout, so that only the installed package can be imported.
    where = subprocess.run(
        [
            str(bindir / "python"),
            "-c",
            "import probe_exporter.binrpc.codec as codec; print(codec.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert where.stdout.startswith(str(tmp_path / "venv"))
    assert where.stdout.strip().endswith(sysconfig.get_config_var("EXT_SUFFIX"))  # compiled
    command = str(bindir / "kamailio-probe-exporter")
    version = subprocess.run(
        [command, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"kamailio-probe-exporter {__version__}"

    config = tmp_path / "targets.toml"
    config.write_text(f'[[targets]]\nname = "kam"\naddress = "{kamailio.tcp}"\n')
    (port,) = free_ports("tcp")
    process = subprocess.Popen(
        [command, "--config.file", str(config), f"--web.listen-address=127.0.0.1:{port}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def probe() -> str | None:
            assert process.poll() is None, "the installed exporter exited"
            try:
                return http_get(f"http://127.0.0.1:{port}/probe?target=kam")[2]
            except OSError:
                return None

        body = wait_until(probe, 30, "the installed exporter to answer", interval=0.2)
        assert re.search(r"^kamailio_up 1(\.0)?$", body, re.MULTILINE), body[:2000]
    finally:
        process.terminate()
        process.wait(timeout=30)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def minimum_requirements() -> list[str]:
    """Each dependency pinned at the lowest version pyproject.toml allows."""
    pins = []
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        (lowest,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        pins.append(f"{requirement.name}=={lowest}")
    return pins


def test_every_dependency_has_a_minimum() -> None:
    assert len(minimum_requirements()) == len(PROJECT["dependencies"])


def test_lock_satisfies_pyproject() -> None:
    """requirements.lock pins every dependency at a version pyproject.toml allows."""
    pinned = dict(
        re.findall(r"^([a-z0-9_.-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        assert name in pinned, f"{name} is not in requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pinned[name]), (name, pinned[name])
    build_lock = (ROOT / "requirements-build.lock").read_text()
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    for text in backend["requires"]:
        requirement = Requirement(text)
        (version,) = re.findall(rf"^{requirement.name}==(\S+)", build_lock, re.M)
        assert requirement.specifier.contains(version)


def test_minimum_versions_pass_the_tests(tmp_path: Path) -> None:
    bindir = fresh_venv(tmp_path / "venv")
    tools = [
        text
        for text in PROJECT["optional-dependencies"]["test"]
        if Requirement(text).name in TEST_TOOLS
    ]
    pip_install(bindir, *minimum_requirements(), *tools)
    installed = subprocess.run(
        [str(bindir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    versions = {
        canonical(name): version
        for name, _, version in (line.partition("==") for line in installed.splitlines())
    }
    for pin in minimum_requirements():
        name, _, version = pin.partition("==")
        assert Version(versions[canonical(name)]) == Version(version), f"{pin} not kept"
    result = subprocess.run(
        [
            str(bindir / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *HERMETIC,
            *REAL_PROBES,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
