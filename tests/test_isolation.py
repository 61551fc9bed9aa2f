"""One target must not stall the others: the exporter as deployed (its real command) against fake
Kamailios that send what a real one never would.

- Replies are bounded per RPC, per probe, in decoded values, and the output in samples; a probe
  over a limit ends with up 0 at stage `limit`, naming the limit, within its deadline, while a
  healthy target's probes keep theirs.
- The history is bounded in bytes as well as in probes.
- Addresses probed ad hoc never push a listed target's connection out of the pool.
- Reloads run one at a time whatever clients do, and neither slow probes past their deadlines
  nor hold up shutdown.

Every figure measured is printed (pytest -s shows them); loops are bounded in count and time.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ExporterProcess, timed_probe, value
from hostile_binrpc import Answer, Behaviour, HostileServer, Listener, reply_body

from probe_exporter.binrpc.codec import Fault, Struct
from probe_exporter.collectors.stats import KNOWN_GROUPS
from probe_exporter.limits import DEFAULT_LIMITS

# Attacks on the exporter process, seconds each: the full suite's, not the fast mode's.
pytestmark = pytest.mark.slow

HOSTILE_TIMEOUT = 2.5
HEALTHY_TIMEOUT = 1.5
SLACK = 1.0  # a deadline bound, not a speed claim: the machine is shared
HISTORY_MAX_BYTES = 8 << 20
BIG_PROBES = 12
ATTACK_ROUNDS = 3  # probes of each hostile target, run side by side
HEALTHY_PROBES = 12

# The sixteen methods of the collectors of the default module (one RPC each).
SIXTEEN = (
    "stats.fetch",
    "pkg.stats",
    "core.tcp_info",
    "core.uptime",
    "core.version",
    "core.info",
    "core.shmmem",
    "tm.stats",
    "sl.stats",
    "rtpengine.show",
    "dispatcher.list",
    "dlg.stats_active",
    "htable.stats",
    "tls.info",
    "dmq.list_nodes",
    "uac.reg_dump",
)


def empty_arrays(body_bytes: int) -> bytes:
    """A reply body of one ARRAY of empty ARRAYs: two bytes each on the wire."""
    return reply_body([[[] for _ in range((body_bytes - 2) // 2)]])


def unique_stats(count: int, group: str = "hostile") -> bytes:
    """A stats.fetch reply of `count` statistics, each of a name never seen before."""
    return reply_body([Struct((f"{group}.s{i}", "1") for i in range(count))])


ALMOST_A_MIB = DEFAULT_LIMITS.max_reply_bytes - 64

# name -> (the fake's answers, the reason the probe must give)
ATTACKS: dict[str, tuple[dict[str, Answer], str]] = {
    # sixteen replies just under max_reply_bytes: 16 MiB in all
    "sixteen": (
        dict.fromkeys(SIXTEEN, empty_arrays(ALMOST_A_MIB)),
        r"replies of more than \d+ bytes exceed max_probe_bytes 4194304",
    ),
    # two such replies: within max_probe_bytes, but a million values
    "values": (
        dict.fromkeys(SIXTEEN[:2], empty_arrays(ALMOST_A_MIB)),
        r"replies of more than 100000 values exceed max_values 100000",
    ),
    # stats.fetch all overflows: per-group fetches of statistics the probe has never seen
    "fallback": (
        {
            "stats.fetch all": Fault(500, "too many statistics"),
            **{f"stats.fetch {group}:": unique_stats(30_000, group) for group in KNOWN_GROUPS},
        },
        r"replies of more than \d+ bytes exceed max_probe_bytes 4194304|"
        r"replies of more than 100000 values exceed max_values 100000",
    ),
    # within every limit on the replies, but more samples out than max_samples
    "samples": (
        {"stats.fetch": unique_stats(25_000)},
        r"\d+ samples exceed max_samples 20000",
    ),
    # one reply longer than max_reply_bytes
    "oversized": (
        {"stats.fetch": empty_arrays(DEFAULT_LIMITS.max_reply_bytes + 16)},
        r"reply of \d+ bytes exceeds max_reply_bytes 1048576",
    ),
}


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    server = HostileServer(tmp_path_factory.mktemp("fakes"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def attackers(fakes: HostileServer) -> dict[str, Listener]:
    return {
        name: fakes.listen(Behaviour.SCRIPTED, replies=replies)
        for name, (replies, _) in ATTACKS.items()
    }


@pytest.fixture(scope="module")
def healthy(fakes: HostileServer) -> Listener:
    """A small, well-formed Kamailio: a few statistics and the core RPCs."""
    return fakes.listen(
        Behaviour.SCRIPTED,
        replies={
            "stats.fetch": [Struct((f"core.s{i}", str(i)) for i in range(200))],
            "core.uptime": [Struct([("now", 1), ("up_since", 1), ("uptime", 1)])],
        },
    )


@pytest.fixture(scope="module")
def big(fakes: HostileServer) -> Listener:
    """A Kamailio within every limit whose output is large: 15,000 statistics."""
    return fakes.listen(Behaviour.SCRIPTED, replies={"stats.fetch": unique_stats(15_000, "big")})


@pytest.fixture(scope="module")
def exporter(
    attackers: dict[str, Listener],
    healthy: Listener,
    big: Listener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("isolation")
    listed = "".join(
        f'[[targets]]\nname = "{name}"\naddress = "{listener.address}"\n'
        f"timeout = {HOSTILE_TIMEOUT}\n\n"
        for name, listener in attackers.items()
    )
    config = workdir / "targets.toml"
    config.write_text(
        f'[[targets]]\nname = "healthy"\naddress = "{healthy.address}"\n'
        f"timeout = {HEALTHY_TIMEOUT}\n\n"
        f'[[targets]]\nname = "big"\naddress = "{big.address}"\ntimeout = {HOSTILE_TIMEOUT}\n\n'
        f"{listed}"
    )
    process = ExporterProcess(
        config, "--history.limit", "100", "--history.max-bytes", str(HISTORY_MAX_BYTES)
    )
    try:
        yield process
    finally:
        process.stop()


def test_a_hostile_target_is_stopped_at_a_limit_while_a_healthy_one_keeps_its_deadline(
    exporter: ExporterProcess,
) -> None:
    timed_probe(exporter, "healthy")  # connected and its methods learnt
    rss_before = exporter.rss_kib()
    hostile: dict[str, list[tuple[str, float]]] = {name: [] for name in ATTACKS}
    errors: list[BaseException] = []

    def attack(name: str) -> None:
        try:
            for _ in range(ATTACK_ROUNDS):
                hostile[name].append(timed_probe(exporter, name, debug="true"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=attack, args=(name,)) for name in ATTACKS]
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    while any(thread.is_alive() for thread in threads) and len(latencies) < HEALTHY_PROBES:
        body, elapsed = timed_probe(exporter, "healthy")
        assert value(body, "kamailio_up") == 1.0, body
        latencies.append(elapsed)
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    rss_after = exporter.rss_kib()

    for name, (_, reason) in ATTACKS.items():
        durations = [elapsed for _, elapsed in hostile[name]]
        print(f"{name}: hostile probes took {', '.join(f'{d:.2f}' for d in durations)} s")
        for body, elapsed in hostile[name]:
            assert "kamailio_up 0.0" in body, body[-2000:]
            assert 'kamailio_probe_failure_info{stage="limit"} 1.0' in body, body[-2000:]
            assert re.search(reason, body), body[:2000]
            assert elapsed < HOSTILE_TIMEOUT + SLACK
    print(
        f"healthy probes during the attack ({len(latencies)}): "
        f"max {max(latencies):.3f} s, median {sorted(latencies)[len(latencies) // 2]:.3f} s; "
        f"RSS {rss_before // 1024} -> {rss_after // 1024} MiB"
    )
    assert len(latencies) >= 3  # the attack lasted long enough to overlap them
    assert max(latencies) < HEALTHY_TIMEOUT + SLACK


def test_the_history_is_bounded_in_bytes(exporter: ExporterProcess) -> None:
    """Each probe of `big` keeps about 2 MiB of rendered metrics: 8 MiB of history hold four,
    however many --history.limit allows; the newest is always there."""
    rss_before = exporter.rss_kib()
    for _ in range(BIG_PROBES):
        body, _ = timed_probe(exporter, "big")
        assert value(body, "kamailio_up") == 1.0, body[-1000:]
    size = len(body)
    rss_after = exporter.rss_kib()
    status, _, page = exporter.get("/")
    assert status == 200
    ids = [int(i) for i in re.findall(r'href="logs\?id=(\d+)"', page)]
    kept: dict[int, int] = {}  # id -> bytes of rendered metrics kept
    for probe_id in ids:
        status, _, page = exporter.get("/logs", id=str(probe_id))
        if status == 200:
            metrics = page.split("Metrics that would have been returned:\n", 1)[1]
            kept[probe_id] = len(metrics.split("\n\n\nModule configuration:", 1)[0].encode())
    kept_big = [i for i in kept if "target: big" in exporter.get("/logs", id=str(i))[2]]
    print(
        f"history: {BIG_PROBES} probes of {size / 2**20:.1f} MiB each, {len(kept_big)} kept, "
        f"{sum(kept.values()) / 2**20:.1f} MiB in all; "
        f"RSS {rss_before // 1024} -> {rss_after // 1024} MiB"
    )
    assert kept_big, "the newest probe is always kept"
    assert sum(kept.values()) <= HISTORY_MAX_BYTES + 64 * len(kept)  # + the line ends added
    assert len(kept_big) < BIG_PROBES  # the count limit (100) alone would keep them all


# -- the pool: ad-hoc addresses never starve listed targets -----------------------------------

ADHOC_ADDRESSES = 40
POOL_FLAGS = ("--pool.max-connections", "8", "--pool.max-adhoc-connections", "4")


def test_adhoc_addresses_never_push_out_a_listed_targets_connection(
    fakes: HostileServer, tmp_path: Path
) -> None:
    """The pool, made small, is filled ten times over by allowed addresses that answer BINRPC:
    the listed target keeps its one connection throughout, and the pool's sockets stay within
    both maximums."""
    listed = fakes.listen(Behaviour.HEALTHY)
    adhoc = [fakes.listen(Behaviour.HEALTHY) for _ in range(ADHOC_ADDRESSES)]
    config = tmp_path / "targets.toml"
    config.write_text(
        f'[[targets]]\nname = "listed"\naddress = "{listed.address}"\ntimeout = 2\n\n'
        '[[allow]]\naddress = "tcp:127.0.0.1/32:*"\n'
    )
    exporter = ExporterProcess(config, *POOL_FLAGS)
    try:
        body, _ = timed_probe(exporter, "listed")
        assert value(body, "kamailio_up") == 1.0, body
        fds_before = exporter.fd_count()
        most_fds = fds_before
        for _ in range(3):
            for index, fake in enumerate(adhoc):
                body, _ = timed_probe(exporter, fake.address)
                assert value(body, "kamailio_up") == 1.0, body
                if index % 10 == 0:
                    body, _ = timed_probe(exporter, "listed")
                    assert value(body, "kamailio_up") == 1.0, body
                most_fds = max(most_fds, exporter.fd_count())
        adhoc_accepted = sum(fake.accepted for fake in adhoc)
        print(
            f"pool: {3 * ADHOC_ADDRESSES} ad-hoc probes, {adhoc_accepted} ad-hoc connections "
            f"made; listed target connected {listed.accepted} time(s); exporter fds "
            f"{fds_before} -> at most {most_fds}"
        )
        assert listed.accepted == 1  # never pushed out, never reconnected
        assert adhoc_accepted > 4  # the ad-hoc ones did push out each other
        # the listed connection is counted in fds_before; ad-hoc ones add 4 at most, plus
        # one closing while the next opens
        assert most_fds <= fds_before + 4 + 1
    finally:
        exporter.stop()


# -- reloads: one at a time, never holding up probes or shutdown -------------------------------

STORM_REQUESTS = 300
STORM_SECONDS = 12.0
BIG_TARGETS = 20_000


def big_config(path: Path, healthy: Listener, targets: int, timeout: float) -> None:
    """`targets` listed targets besides `healthy`; one address names no protocol, which every
    load warns about once: the log counts the parses."""
    lines = [
        f"[modules.default]\ntimeout = {timeout}\n\n",
        f'[[targets]]\nname = "healthy"\naddress = "{healthy.address}"\n\n',
        '[[targets]]\nname = "bare"\naddress = "127.0.0.1:5060"\n\n',
    ]
    lines += [
        f'[[targets]]\nname = "t{i}"\naddress = "tcp:10.0.{i // 250 % 256}.{i % 250 + 1}:2049"\n\n'
        for i in range(targets)
    ]
    path.write_text("".join(lines))


def abandoned_reload(port: int) -> None:
    """POST /-/reload, then close at once without reading the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")


def test_a_reload_storm_parses_one_at_a_time_and_probes_keep_their_deadline(
    healthy: Listener, tmp_path: Path
) -> None:
    config = tmp_path / "targets.toml"
    big_config(config, healthy, BIG_TARGETS, HEALTHY_TIMEOUT)
    exporter = ExporterProcess(config, ready_timeout=60)
    try:
        timed_probe(exporter, "healthy")
        parses_before = exporter.log().count("names no protocol")
        sent = 0
        latencies: list[float] = []
        stop = threading.Event()

        def storm() -> None:
            nonlocal sent
            deadline = time.monotonic() + STORM_SECONDS
            while sent < STORM_REQUESTS and time.monotonic() < deadline and not stop.is_set():
                abandoned_reload(exporter.port)
                sent += 1
                time.sleep(0.02)

        thread = threading.Thread(target=storm)
        started = time.monotonic()
        thread.start()
        try:
            while thread.is_alive() and time.monotonic() - started < STORM_SECONDS + 5:
                body, elapsed = timed_probe(exporter, "healthy")
                assert value(body, "kamailio_up") == 1.0, body
                latencies.append(elapsed)
        finally:
            stop.set()
            thread.join(30)
        storm_seconds = time.monotonic() - started
        # the last reload ends; then a plain reload answers as before
        status, _, text = http_post(exporter, "/-/reload")
        assert status == 200, text
        parses = exporter.log().count("names no protocol") - parses_before
        print(
            f"reload storm: {sent} abandoned reloads in {storm_seconds:.1f} s, {parses} parses "
            f"of {BIG_TARGETS} targets; {len(latencies)} healthy probes, max "
            f"{max(latencies):.3f} s, median {sorted(latencies)[len(latencies) // 2]:.3f} s"
        )
        assert max(latencies) < HEALTHY_TIMEOUT + SLACK
        # one parse at a time, each taking a good part of a second: far fewer than requests
        assert parses <= sent // 4
    finally:
        exporter.stop()


def http_post(exporter: ExporterProcess, path: str) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=60)
    try:
        connection.request("POST", path)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read().decode()
    finally:
        connection.close()


HUGE_TARGETS = 300_000
# The drain waits for probes (1 s here) and the reload request, then the exit must not wait
# for the parse: a deadline bound, with the machine's slack.
SHUTDOWN_BOUND = 1.0 + 1.0 + SLACK + 3.0


def test_sigterm_during_a_long_reload_exits_without_waiting_for_the_parse(
    healthy: Listener, tmp_path: Path
) -> None:
    config = tmp_path / "targets.toml"
    big_config(config, healthy, 0, 1.0)  # probes end within 1 s: so does the drain
    exporter = ExporterProcess(config)
    big_config(config, healthy, HUGE_TARGETS, 1.0)  # seconds of parsing

    def reload() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            http_post(exporter, "/-/reload")

    reloading = threading.Thread(target=reload)
    reloading.start()
    time.sleep(1.0)  # the parse has begun
    started = time.monotonic()
    exporter.process.send_signal(signal.SIGTERM)
    try:
        code = exporter.process.wait(SHUTDOWN_BOUND + 10)
    finally:
        exporter.stop()
        reloading.join(30)
    took = time.monotonic() - started
    loaded = f"config loaded: {HUGE_TARGETS + 2} targets" in exporter.log()
    print(f"SIGTERM during a reload of {HUGE_TARGETS} targets: exited ({code}) in {took:.2f} s")
    assert not loaded, "the parse ended before the exit: make the file larger"
    assert code == 0
    assert took < SHUTDOWN_BOUND
