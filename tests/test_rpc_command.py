"""`kamailio-probe-exporter rpc`: JSON output, exit codes and parameter typing, against a real
Kamailio where one is needed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kamailio_harness import KamailioInstance, free_ports

from probe_exporter.binrpc.codec import Struct
from probe_exporter.rpc_command import EXIT_STDOUT_CLOSED, main, parse_params, to_json


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object, str]:
    """Runs the command; returns its exit status, its stdout parsed as JSON, its stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, json.loads(out) if out else None, err


@pytest.mark.kamailio
def test_dispatcher_list_keeps_repeated_dest_as_pairs(
    kamailio: KamailioInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    status, output, err = run(capsys, kamailio.tcp, "dispatcher.list")
    assert (status, err) == (0, "")
    assert isinstance(output, dict)
    assert output["NRSETS"] == 1
    dispatcher_set = output["RECORDS"]["SET"]
    assert dispatcher_set["ID"] == 1
    targets = dispatcher_set["TARGETS"]
    # Two members named DEST: not an object, a list of [name, value] pairs.
    assert [name for name, _ in targets] == ["DEST", "DEST"]
    uris = [dest["URI"] for _, dest in targets]
    assert uris == [
        f"sip:127.0.0.1:{kamailio.dispatcher_live_port}",
        f"sip:127.0.0.1:{kamailio.dispatcher_dead_port}",
    ]
    assert targets[0][1]["ATTRS"]["DUID"] == "live"
    assert targets[0][1]["PRIORITY"] == 10


@pytest.mark.kamailio
@pytest.mark.parametrize("transport", ["tcp", "unix", "udp", "unixd"])
def test_one_value_is_printed_as_itself(
    kamailio: KamailioInstance, capsys: pytest.CaptureFixture[str], transport: str
) -> None:
    status, output, _ = run(capsys, getattr(kamailio, transport), "core.uptime")
    assert status == 0
    assert isinstance(output, dict)
    assert set(output) == {"now", "up_since", "uptime"}
    assert isinstance(output["uptime"], int)


@pytest.mark.kamailio
def test_several_values_are_a_list_and_none_is_null(
    kamailio: KamailioInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, kamailio.tcp, "core.echo", "a", "b c")[:2] == (0, ["a", "b c"])
    assert run(capsys, kamailio.tcp, "core.echo", "a")[:2] == (0, "a")
    assert run(capsys, kamailio.tcp, "core.echo")[:2] == (0, None)


@pytest.mark.kamailio
def test_integer_looking_params_go_as_int_unless_forced(
    kamailio: KamailioInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    # stats.fetch wants strings: Kamailio refuses an INT, which shows what was sent.
    status, _, err = run(capsys, "--timeout", "2", kamailio.tcp, "stats.fetch", "42")
    assert status == 1
    assert err.startswith("fault 400: ")
    assert run(capsys, kamailio.tcp, "stats.fetch", "s:42")[:2] == (0, {})
    assert run(capsys, kamailio.tcp, "stats.fetch", "--str", "42")[:2] == (0, {})
    status, output, _ = run(capsys, kamailio.unix, "stats.fetch", "shmem:", "--str", "7")
    assert status == 0
    assert isinstance(output, dict)
    assert "shmem.free_size" in output


@pytest.mark.kamailio
def test_fault_exits_1_with_code_and_message(
    kamailio: KamailioInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, kamailio.unix, "no.such.method") == (
        1,
        None,
        "fault 500: command no.such.method not found\n",
    )


@pytest.mark.kamailio
def test_closed_stdout_ends_quietly_with_its_own_status(kamailio: KamailioInstance) -> None:
    # The read end is closed before the command writes: its write fails for certain, as when
    # `| head -c 10` has exited (a pipe buffer would hide a later close).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "probe_exporter.cli", "rpc", kamailio.unix, "pkg.stats"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (completed.returncode, completed.stderr) == (EXIT_STDOUT_CLOSED, b"")


def test_connection_refused_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports("tcp")
    status, output, err = run(capsys, f"tcp:127.0.0.1:{port}", "core.uptime")
    assert (status, output) == (2, None)
    assert err == (
        f"error: tcp:127.0.0.1:{port}: ECONNREFUSED (Connection refused):"
        " is ctl loaded and listening on this address?\n"
    )


def test_missing_unix_socket_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, f"unix:{tmp_path}/kamailio_ctl", "core.uptime")
    assert status == 2
    assert "no socket file there" in err


def test_bad_address_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "tcp:127.0.0.1:0", "core.uptime")
    assert status == 2
    assert err == "error: bad address: port 0 out of range (1-65535) in 'tcp:127.0.0.1:0'\n"


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A 127.0.0.1 TCP port whose backlog accepts connections that nobody ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_timeout_exits_2(silent_listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp:127.0.0.1:{silent_listener}"
    status, _, err = run(capsys, "--timeout", "0.2", address, "core.uptime")
    assert status == 2
    assert err == (
        f"error: {address}: no reply within 0.2 s (0 of 1 replies received, not a byte on this"
        " connection: a hung Kamailio, or a port that is not ctl's, as SIP and HTTP ports stay"
        " silent)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["tcp:127.0.0.1:2049", "m", "--int", "x"], "not an integer: 'x'"),
        (["tcp:127.0.0.1:2049", "m", "i:2147483648"], "does not fit a 32-bit BINRPC INT"),
        (["--timeout", "0", "tcp:127.0.0.1:2049", "m"], "--timeout must be positive"),
        (["--timeout", "soon", "tcp:127.0.0.1:2049", "m"], "invalid float value"),
        (["tcp:127.0.0.1:2049"], "the following arguments are required: METHOD"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "params"),
    [
        (["1", "-2", "+3", "x", "1.5", "0x10", ""], [1, -2, 3, "x", "1.5", "0x10", ""]),
        (["2147483647", "-2147483648"], [2147483647, -2147483648]),
        (["2147483648", "-2147483649"], ["2147483648", "-2147483649"]),
        (["s:1", "i:2", "s:", "S:1"], ["1", 2, "", "S:1"]),
        (["--str", "1", "s:2", "--auto", "3"], ["1", "s:2", 3]),
        (["--int", "1", "-2", "--str", "3", "--timeout"], [1, -2, "3", "--timeout"]),
        (["shmem:", "core:"], ["shmem:", "core:"]),
    ],
)
def test_parse_params(words: list[str], params: list[int | str]) -> None:
    result = parse_params(words)
    assert result == params
    assert [type(p) for p in result] == [type(p) for p in params]


def test_to_json_shapes() -> None:
    nested = Struct([("a", 1), ("b", Struct([(None, "x"), (None, "y")]))])
    assert to_json(nested) == {"a": 1, "b": [[None, "x"], [None, "y"]]}
    assert to_json([Struct([("k", 1.5)]), b"\x01\xff"]) == [{"k": 1.5}, "01ff"]
    assert to_json(Struct()) == {}
