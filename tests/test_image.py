"""The image: built from the Dockerfile with podman and run against a real Kamailio.

Slow tier: the first build on a machine makes the local base from Debian packages (about a
minute) and downloads the locked wheels; later runs reuse both (tests/oci_harness.py).
"""

from __future__ import annotations

import re
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_certificate, wait_until
from kamailio_harness import KamailioInstance, free_ports
from oci_harness import (
    build_image,
    inspect,
    local_base,
    podman,
    podman_env,
    remove_container,
    require_podman,
    run,
)

from probe_exporter import __version__

pytestmark = [pytest.mark.slow, pytest.mark.real]  # podman builds and runs the image

ROOT = Path(__file__).resolve().parent.parent
TAG = "localhost/kamailio-probe-exporter:test"
CONFIG_DIR = "/etc/kamailio-probe-exporter"
# The image as built here measured 146 MB (vfs, uncompressed); the budget leaves room for
# dependency updates, not for pip, setuptools or a compiler creeping back in.
SIZE_BUDGET_MB = 170
STOP_DEADLINE = 5.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require_podman()
    return podman_env(tmp_path_factory.mktemp("podman"))


@pytest.fixture(scope="module")
def image(env: dict[str, str]) -> str:
    started = time.monotonic()
    base = local_base(env)
    built = build_image(
        env,
        ROOT,
        TAG,
        base,
        {"VERSION": __version__, "REVISION": "test", "CREATED": "1970-01-01T00:00:00Z"},
    )
    what = "built" if built else "unchanged since its last build, kept"
    print(f"\nimage {what} in {time.monotonic() - started:.0f} s")
    return TAG


def test_size_is_within_budget(env: dict[str, str], image: str) -> None:
    size_mb = int(inspect(env, "image", image)["Size"]) / 1e6  # type: ignore[call-overload]
    print(f"\nimage size: {size_mb:.0f} MB (budget {SIZE_BUDGET_MB} MB)")
    assert size_mb < SIZE_BUDGET_MB


def test_labels_and_healthcheck_are_kept(env: dict[str, str], image: str) -> None:
    found = inspect(env, "image", image)
    config = found["Config"]
    assert isinstance(config, dict)
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["User"] == "10001:10001"
    # podman keeps a HEALTHCHECK only in docker format, and shows it outside Config.
    assert found["Healthcheck"]["Test"] == [  # type: ignore[index]
        "CMD",
        "python",
        "-m",
        "probe_exporter.healthcheck",
    ]


def test_version(env: dict[str, str], image: str) -> None:
    result = run(env, image, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"kamailio-probe-exporter {__version__}"


def test_config_check_of_the_example(env: dict[str, str], image: str) -> None:
    result = run(
        env,
        image,
        "--config.check",
        options=["--read-only", f"--volume={ROOT / 'targets.toml'}:{CONFIG_DIR}/targets.toml:ro"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{CONFIG_DIR}/targets.toml: ok")


def _process_status(env: dict[str, str], name: str) -> dict[str, str]:
    pid = inspect(env, "container", name)["State"]["Pid"]  # type: ignore[index]
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


@pytest.fixture
def exporter_container(
    env: dict[str, str], image: str, kamailio: KamailioInstance, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """The image serving TLS on a port given as a flag, with the example's layout of files."""
    config = tmp_path / "config"
    config.mkdir()
    cert, key = make_certificate(config)
    (config / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: {CONFIG_DIR}/{cert.name}\n"
        f"  key_file: {CONFIG_DIR}/{key.name}\n"
    )
    (config / "targets.toml").write_text(f'[[targets]]\nname = "kam"\naddress = "{kamailio.tcp}"\n')
    for path in config.iterdir():
        path.chmod(0o644)  # readable by the image's user
    (port,) = free_ports("tcp")
    name = f"kpe-test-{port}"
    podman(
        env,
        "run",
        "--detach",
        f"--name={name}",
        "--network=host",
        "--read-only",
        f"--volume={config}:{CONFIG_DIR}:ro",
        image,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={CONFIG_DIR}/web.yml",
        "--log.format=json",
        timeout=180,
    )
    try:
        yield name, f"https://127.0.0.1:{port}"
    finally:
        remove_container(env, name)


def _get(url: str) -> tuple[int, str]:
    context = ssl._create_unverified_context()
    with urllib.request.urlopen(url, timeout=10, context=context) as answer:
        return int(answer.status), answer.read().decode()


def _ready(url: str) -> bool:
    try:
        return _get(f"{url}/-/ready")[0] == 200
    except OSError:
        return False


def test_container_probes_kamailio_and_stops_on_sigterm(
    env: dict[str, str], exporter_container: tuple[str, str]
) -> None:
    name, url = exporter_container
    wait_until(lambda: _ready(url), 60, "the container to get ready", interval=0.2)

    status, body = _get(f"{url}/probe?target=kam")
    assert status == 200
    assert re.search(r"^kamailio_up 1(\.0)?$", body, re.MULTILINE), body[:2000]

    # The HEALTHCHECK found the port in the flags and the TLS in the web config.
    health = podman(env, "healthcheck", "run", name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    assert inspect(env, "container", name)["State"]["Health"]["Status"] == "healthy"  # type: ignore[index]

    process = _process_status(env, name)
    assert process["Uid"].split() == ["10001"] * 4
    assert process["Gid"].split() == ["10001"] * 4
    assert int(process["CapEff"], 16) == 0
    assert int(process["CapPrm"], 16) == 0

    started = time.monotonic()
    podman(env, "kill", "--signal=TERM", name)
    waited = podman(env, "wait", name, timeout=STOP_DEADLINE + 30)
    elapsed = time.monotonic() - started
    assert waited.stdout.strip() == "0", podman(env, "logs", name).stderr[-2000:]
    assert elapsed < STOP_DEADLINE, f"stopped {elapsed:.1f} s after SIGTERM"


def test_flags_pass_through_the_entrypoint(env: dict[str, str], image: str) -> None:
    result = run(env, image, "--log.level=nonsense")
    assert result.returncode == 2
    assert "--log.level" in result.stderr
