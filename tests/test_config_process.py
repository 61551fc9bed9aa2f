"""Config files and basic auth as operators meet them, against the real exporter process:
--config.check output, files that are missing or not regular, wrong-password floods and
user-name timing."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from test_cli import Exporter, get, run_cli

# The exporter process with FIFOs, floods and timing: seconds each, not in the fast mode.
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


@pytest.fixture
def started() -> Iterator[list[Exporter]]:
    exporters: list[Exporter] = []
    yield exporters
    for exporter in exporters:
        exporter.stop()


def post(url: str, timeout: float = 10) -> tuple[int, str]:
    request = urllib.request.Request(url, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -- targets.toml ------------------------------------------------------------------------------


def test_config_check_prints_every_error_and_every_warning(tmp_path: Path) -> None:
    broken = tmp_path / "targets.toml"
    broken.write_text(
        '[pool]\nidle_ttl = "5"\n'
        '[modules.m]\ndialog_profiles = ["inbound", "inbound"]\n'
        '[[targets]]\nname = "a"\naddress = "tcp://127.0.0.1:2046"\n'
        '[[targets]]\nname = "a"\naddress = "tcp:127.0.0.1:2046"\nmodule = "nope"\n'
    )
    result = run_cli("--config.check", "--config.file", str(broken))
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if ": error: " in line]
    assert [line.split(": error: ")[1].split(":")[0] for line in errors] == [
        "pool.idle_ttl",
        "modules.m.dialog_profiles",
        "targets[0].address",
        "targets[1].name",
        "targets[1].module",
    ]
    assert "write tcp:127.0.0.1:2046 (no '//')" in errors[2]
    assert errors[2].endswith("(line 7)")

    udp = tmp_path / "udp.toml"
    udp.write_text('[[targets]]\nname = "a"\naddress = "127.0.0.1:2046"\n')
    result = run_cli("--config.check", "--config.file", str(udp))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{udp}: warning: targets[0].address: '127.0.0.1:2046' names no protocol, so Kamailio "
        "and the exporter read it as UDP; write udp:127.0.0.1:2046, or tcp:127.0.0.1:2046 "
        "for a TCP ctl socket (line 3)",
        f"{udp}: ok (1 targets, 0 allow rules, 1 modules)",
    ]
    assert "level=warn" in result.stderr


def test_config_check_names_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "targets.toml"
    result = run_cli("--config.check", "--config.file", str(missing))
    assert result.returncode == 1
    assert result.stdout == f"error: config file {missing}: no such file\n"
    assert f"invalid configuration: config file {missing}: no such file" in result.stderr
    assert "Errno" not in result.stderr


def test_a_fifo_never_blocks_start_reload_or_exit(tmp_path: Path, started: list[Exporter]) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # nobody ever writes to it: reading it would block for ever
    result = run_cli("--config.file", str(fifo))
    assert result.returncode == 1
    assert f"config file {fifo}: not a regular file (a FIFO)" in result.stderr

    config = tmp_path / "targets.toml"
    config.write_text("")
    exporter = Exporter("--config.file", str(config))
    started.append(exporter)
    config.unlink()
    assert post(f"{exporter.url}/-/reload") == (
        500,
        f"failed to reload config: config file {config}: no such file\n",
    )
    os.mkfifo(config)
    assert post(f"{exporter.url}/-/reload") == (
        500,
        f"failed to reload config: config file {config}: not a regular file (a FIFO)\n",
    )
    exporter.process.send_signal(signal.SIGHUP)  # a reload in the background, at shutdown
    assert get(f"{exporter.url}/-/healthy")[0] == 200
    exporter.process.send_signal(signal.SIGTERM)
    assert exporter.process.wait(timeout=10) == 0
    assert "config load failed, keeping the previous one" in exporter.stop()


# -- basic auth --------------------------------------------------------------------------------


def authorization(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def status(port: int, headers: dict[str, str], source: str = "127.0.0.1") -> int:
    """GET /metrics from a given loopback source address; the answer's status."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request("GET", "/metrics", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def web_config(tmp_path: Path, users: dict[str, str], cost: int) -> Path:
    path = tmp_path / "web.yml"
    lines = [
        f"  {user}: '{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()}'"
        for user, password in users.items()
    ]
    path.write_text("basic_auth_users:\n" + "\n".join(lines) + "\n")
    return path


def test_a_flood_of_wrong_passwords_never_refuses_a_right_one(
    tmp_path: Path, started: list[Exporter]
) -> None:
    users = {f"user{n}": f"password-{n}" for n in range(4)}
    config = tmp_path / "targets.toml"
    config.write_text("")
    exporter = Exporter(
        "--config.file", str(config), "--web.config.file", str(web_config(tmp_path, users, 10))
    )
    started.append(exporter)
    stop = threading.Event()
    flood_statuses: list[int] = []

    def flood(connection: int) -> None:
        # Wrong passwords, each new, for a known user, from another loopback address.
        for attempt in range(200):
            if stop.is_set():
                return
            wrong = authorization("user0", f"wrong-{connection}-{attempt}")
            flood_statuses.append(status(exporter.port, wrong, source="127.0.0.2"))

    flooders = [threading.Thread(target=flood, args=(n,)) for n in range(24)]
    for thread in flooders:
        thread.start()
    try:
        time.sleep(1.0)  # the flood is on
        # Users whose right password was never checked yet: each needs a bcrypt check.
        answers = {
            user: status(exporter.port, authorization(user, pw)) for user, pw in users.items()
        }
    finally:
        stop.set()
        for thread in flooders:
            thread.join(timeout=60)
    assert answers == dict.fromkeys(users, 200)
    assert len(flood_statuses) >= 24
    assert set(flood_statuses) == {401}


def test_an_unknown_user_is_refused_as_slowly_as_a_known_one(
    tmp_path: Path, started: list[Exporter]
) -> None:
    config = tmp_path / "targets.toml"
    config.write_text("")
    # Cost 12, as the example web config's recipe makes: a check takes a few hundred ms.
    exporter = Exporter(
        "--config.file",
        str(config),
        "--web.config.file",
        str(web_config(tmp_path, {"prometheus": "right"}, 12)),
    )
    started.append(exporter)
    times: dict[str, list[float]] = {"prometheus": [], "nobody": []}
    for attempt in range(7):
        for user, spent in times.items():  # interleaved, so that load affects both alike
            began = time.perf_counter()
            assert status(exporter.port, authorization(user, f"wrong-{attempt}")) == 401
            spent.append(time.perf_counter() - began)
    known, unknown = statistics.median(times["prometheus"]), statistics.median(times["nobody"])
    # Before, an unknown user was checked against a cheaper hash: about 4 times faster.
    assert 0.6 < unknown / known < 1.6, times
