"""What an operator reads when a probe fails, run against the real exporter: errors that say
what to do (in the probe's debug output, /logs and the exporter's log), a log that reports a
failure when it starts and when it ends rather than on every scrape, and log text that stays
bounded whatever a hostile Kamailio sends.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ExporterProcess, value
from hostile_binrpc import Behaviour, HostileServer, Listener
from hostile_http import HostileHttpSource
from kamailio_harness import KamailioInstance, free_ports

from probe_exporter.binrpc.codec import DEFAULT_MAX_PACKET_SIZE, Fault, Struct
from probe_exporter.logs import MESSAGE_LIMIT

SHORT = 1.0  # the timeout of targets that time out
LONG = 8.0  # the timeout of targets that must fail at once, well before it
# A value close to the packet limit whose repr is four times as long: the log amplification of
# a hostile Kamailio, unbounded before.
HUGE = "\x00" * (DEFAULT_MAX_PACKET_SIZE - 4096)
LINE_BOUND = MESSAGE_LIMIT + 1024  # a bounded message plus the line's other fields

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def amplifier(hostile: HostileServer) -> Listener:
    """A peer whose uptime is a huge bad value and whose tm.stats is a huge FAULT."""
    return hostile.listen(
        Behaviour.SCRIPTED,
        replies={"core.uptime": [Struct([("uptime", HUGE)])], "tm.stats": Fault(500, HUGE)},
    )


@pytest.fixture(scope="module")
def exporter(
    kamailio: KamailioInstance,
    http_source: HostileHttpSource,
    hostile: HostileServer,
    amplifier: Listener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("messages")
    (closed_port,) = free_ports("tcp")
    silent = hostile.listen(Behaviour.SILENT)
    targets = {
        "closed": (f"tcp:127.0.0.1:{closed_port}", SHORT),
        "no-socket": (f"unix:{workdir}/kamailio_ctl", SHORT),
        "http": (f"tcp:127.0.0.1:{http_source.port}", LONG),
        "sip": (f"tcp:127.0.0.1:{kamailio.sip_port}", SHORT),
        "silent": (silent.address, SHORT),
        "amplifier": (amplifier.address, LONG),
    }
    listed = "".join(
        f'[[targets]]\nname = "{name}"\naddress = "{address}"\ntimeout = {timeout}\n\n'
        for name, (address, timeout) in targets.items()
    )
    config = workdir / "targets.toml"
    config.write_text(
        f'{listed}[[targets]]\nname = "merged"\naddress = "{kamailio.tcp}"\n'
        f'xhttp_prom_url = "{kamailio.metrics_url}"\n'
    )
    process = ExporterProcess(config, "--log.format", "json")
    try:
        yield process
    finally:
        process.stop()


def probe(exporter: ExporterProcess, target: str) -> str:
    """A debug probe of `target`: its log, metrics and settings."""
    status, _, body = exporter.get("/probe", target=target, debug="true")
    assert status == 200, body
    return body


def logs_of(exporter: ExporterProcess, target: str) -> str:
    status, _, body = exporter.get("/logs", target=target)
    assert status == 200, body
    return body


def log_lines(exporter: ExporterProcess, target: str) -> list[dict[str, Any]]:
    return [line for line in exporter.log_lines() if line.get("target") == target]


def metrics_of(debug_text: str) -> str:
    metrics = debug_text.split("Metrics that would have been returned:\n")[1]
    return metrics.split("\n\n\nModule configuration:")[0]


def stage(debug_text: str) -> str | None:
    found = re.search(r'kamailio_probe_failure_info\{stage="(\w+)"\} 1', debug_text)
    return found.group(1) if found else None


def said_everywhere(exporter: ExporterProcess, target: str, pattern: str) -> str:
    """Probes `target` and checks that its debug output, /logs and the exporter's log say
    `pattern`, as an error; returns the message."""
    debug = probe(exporter, target)
    found = re.search(rf"error probe failed at stage \w+: .*{pattern}.*", debug)
    assert found, debug
    assert re.search(pattern, logs_of(exporter, target))
    errors = [line["msg"] for line in log_lines(exporter, target) if line["level"] == "error"]
    assert errors, exporter.log()[-3000:]
    assert re.search(pattern, errors[-1]), errors[-1]
    return found.group(0)


def test_a_closed_tcp_port_asks_whether_ctl_listens(exporter: ExporterProcess) -> None:
    message = said_everywhere(
        exporter,
        "closed",
        r"ECONNREFUSED \(Connection refused\): is ctl loaded and listening on this address\?",
    )
    print(message)


def test_a_missing_unix_socket_asks_whether_kamailio_runs(exporter: ExporterProcess) -> None:
    message = said_everywhere(
        exporter,
        "no-socket",
        r"no socket file there: is Kamailio running, and ctl's binrpc set to \"unix:/.+\"\?",
    )
    print(message)


def test_an_http_port_fails_at_once_saying_what_answered(exporter: ExporterProcess) -> None:
    message = said_everywhere(
        exporter,
        "http",
        r"the peer answered like an HTTP server \('HTTP/1\.[01] 400 Bad Request'\.\.\.\): "
        r"is this the ctl port\?",
    )
    debug = probe(exporter, "http")
    assert stage(debug) == "decode"
    # At once: the deadline is LONG, the answer came long before it.
    duration = value(metrics_of(debug), "kamailio_probe_duration_seconds")
    assert duration is not None
    assert duration < LONG / 4, debug
    print(message, f"after {duration:.3f} s of {LONG} s")


@pytest.mark.parametrize("target", ["sip", "silent"])
def test_a_port_that_never_answers_may_not_be_ctl(exporter: ExporterProcess, target: str) -> None:
    # A real Kamailio's SIP port over TCP takes the request and waits for a SIP message.
    message = said_everywhere(
        exporter,
        target,
        r"no complete answer within 1\.000s \(0 of \d+ replies received, not a byte on this "
        r"connection: a hung Kamailio, or a port that is not ctl's, as SIP and HTTP ports stay "
        r"silent\)",
    )
    again = probe(exporter, target)
    assert stage(again) == "timeout", again
    print(message)


def test_a_hostile_value_leaves_bounded_log_lines(
    exporter: ExporterProcess, amplifier: Listener
) -> None:
    before = exporter.log_path.stat().st_size
    debug = probe(exporter, "amplifier")
    assert value(metrics_of(debug), "kamailio_exporter_collector_success", collector="core") == 0
    assert value(metrics_of(debug), "kamailio_exporter_collector_success", collector="tm") == 0
    log_text = debug.split("Metrics that would have been returned:")[0]
    # The bad value is quoted with its ends only; the huge fault message is cut with a marker.
    assert re.search(
        r"error collector core failed: core\.uptime: field 'uptime' is not an INT "
        r"\('(\\x00){8,}\\?\.\.\.[\\x0]{30,}'\)$",
        log_text,
        re.MULTILINE,
    )
    # (NUL characters escaped, as any control character.)
    assert re.search(
        r"error collector tm failed: tm\.stats: FAULT 500 (\\x00){500,}\.\.\. \[cut \d\.\d MiB\]$",
        log_text,
        re.MULTILINE,
    )
    for text in (log_text, logs_of(exporter, "amplifier").split("Metrics that would")[0]):
        assert max(len(line) for line in text.splitlines()) <= LINE_BOUND
        assert len(text) < 8 * LINE_BOUND  # a dozen lines, two of them long
    written = exporter.log_path.read_bytes()[before:]
    assert written, "the first failure is logged"
    assert max(len(line) for line in written.splitlines()) <= LINE_BOUND
    print(
        f"a {len(HUGE)} B value (repr {len(repr(HUGE))} B): {len(written)} B of exporter log, "
        f"{len(log_text)} B of probe log"
    )


def test_a_healthy_target_with_a_merged_source_logs_nothing_per_probe(
    exporter: ExporterProcess,
) -> None:
    for _ in range(3):
        debug = probe(exporter, "merged")
        assert value(metrics_of(debug), "kamailio_up") == 1.0
    # The probe's own log keeps every line, debug ones included...
    assert re.search(r"debug probe succeeded in", logs_of(exporter, "merged"))
    # ...and none of them reaches the exporter's log at the default levels.
    assert log_lines(exporter, "merged") == []


def test_eacces_names_both_sides_and_the_fix(tmp_path: Path) -> None:
    """The exporter, run as nobody, against a real Kamailio's unix socket (mode 0600, root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the exporter as another user")
    shared = Path(tempfile.mkdtemp(prefix="eacces-"))  # one nobody may enter
    try:
        shared.chmod(0o755)
        kamailio = KamailioInstance(shared / "kamailio")
        config = shared / "targets.toml"
        config.write_text(f'[[targets]]\nname = "local"\naddress = "{kamailio.unix}"\n')
        config.chmod(0o644)
        kamailio.start()
        try:
            exporter = ExporterProcess(
                config, "--log.format", "json", log_path=tmp_path / "exporter.log", user="nobody"
            )
            try:
                message = said_everywhere(
                    exporter,
                    "local",
                    r"EACCES \(Permission denied\): the exporter runs as uid 65534 \(nobody\), "
                    r"gids 65534 \(nogroup\); the socket is owned by uid 0 \(root\), gid 0 "
                    r"\(root\), mode 0600 \(srw-------\): give it a group of the exporter's "
                    r".*modparam\(\"ctl\", \"mode\", 0660\) \(see docs/kamailio\.md\)",
                )
            finally:
                exporter.stop()
        finally:
            kamailio.stop()
    finally:
        for path in sorted(shared.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
        shared.rmdir()
    print(message)


def test_a_down_target_is_logged_when_it_goes_down_and_when_it_recovers(
    kamailio_factory: Any, tmp_path: Path
) -> None:
    kamailio: KamailioInstance = kamailio_factory()
    config = tmp_path / "targets.toml"
    config.write_text(
        f'[[targets]]\nname = "kam"\naddress = "{kamailio.tcp}"\ntimeout = {SHORT}\n'
        f'xhttp_prom_url = "{kamailio.metrics_url}"\n'
    )
    exporter = ExporterProcess(config, "--log.format", "json")
    try:
        assert value(exporter.get("/probe", target="kam")[2], "kamailio_up") == 1.0
        kamailio.stop()
        down = 5
        for _ in range(down):
            debug = probe(exporter, "kam")
            assert stage(debug) == "connect"
            # Every probe's own log still says why, at its level.
            assert re.search(r"error probe failed at stage connect: .*ECONNREFUSED", debug)
            assert re.search(r"warning xhttp_prom: cannot connect", debug)
        kamailio.restart()
        assert value(exporter.get("/probe", target="kam")[2], "kamailio_up") == 1.0
        assert value(exporter.get("/probe", target="kam")[2], "kamailio_up") == 1.0
    finally:
        exporter.stop()
    lines = log_lines(exporter, "kam")
    for line in lines:
        print(json.dumps(line))
    assert [line["level"] for line in lines] == ["error", "warn", "info"]
    assert re.match(r"probe failed at stage connect: .*ECONNREFUSED", lines[0]["msg"])
    assert lines[1]["msg"].startswith("xhttp_prom: cannot connect")
    assert re.fullmatch(
        rf"working again after {down} failed probes in \d+s \(failed at stage connect\)",
        lines[2]["msg"],
    )


def test_a_refused_target_is_logged_once_as_a_warning(tmp_path: Path) -> None:
    """A typo'd target in a scrape config is refused on every scrape: the first refusal of
    each text is a warning, the repeats are at debug level."""
    (closed_port,) = free_ports("tcp")
    config = tmp_path / "targets.toml"
    config.write_text(f'[[targets]]\nname = "kam"\naddress = "tcp:127.0.0.1:{closed_port}"\n')
    typo, outside = "kam-typo", "tcp:192.0.2.1:2046"
    exporter = ExporterProcess(config, "--log.format", "json", "--log.level", "debug")
    try:
        for target in (typo, typo, outside, typo, outside, typo, typo):
            status, _, body = exporter.get("/probe", target=target)
            assert status == 403, body
    finally:
        exporter.stop()
    for target, refusals in ((typo, 5), (outside, 2)):
        lines = log_lines(exporter, target)
        assert [line["level"] for line in lines] == ["warn"] + ["debug"] * (refusals - 1)
        assert lines[0]["msg"].startswith("target rejected: ")
        assert all(line["msg"].startswith("target rejected again: ") for line in lines[1:])
