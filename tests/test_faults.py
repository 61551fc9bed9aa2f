"""Fault injection: the exporter (its real command) against BINRPC peers that misbehave in every
way a network or a broken Kamailio can, next to a real, healthy Kamailio.

For each misbehaviour a probe must answer HTTP 200 with `kamailio_up 0` and the right failure
stage within its deadline, say in its debug output what happened, and discard the connection;
a healthy Kamailio's probes must not notice. After 2,000 such probes the exporter's open file
descriptors and memory must be back at their level before them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import aiohttp
import pytest
from helpers import ExporterProcess, timed_probe, value, wait_until
from hostile_binrpc import EXPECTED_STAGES, Behaviour, HostileServer, Listener
from kamailio_harness import KamailioInstance

TIMEOUT = 0.5  # each hostile target's timeout
SOAK_TIMEOUT = 0.3  # the timeout of the module that probes by address
SOAK_PROBES = 2000
SOAK_CONCURRENCY = 48
# Allowed growth after the soak: a few descriptors for sockets still closing, and some memory
# for allocator fragmentation; a leak of one socket or one buffer per probe is far beyond both.
FD_SLACK = 3
RSS_SLACK_KIB = 12 * 1024

# What the debug output must say for each misbehaviour.
DEBUG_SAYS = {
    Behaviour.SILENT: r"no complete answer within 0\.500s \(0 of \d+ replies received, not a "
    r"byte on this connection: a hung Kamailio, or a port that is not ctl's",
    Behaviour.HALF_REPLY: r"no complete answer within 0\.500s \(0 of \d+ replies and "
    r"[1-9]\d* bytes of the next received\)",
    Behaviour.CLOSE_MID_REPLY: r"connection lost \(closed by the server\) with 0 of \d+ "
    r"replies and [1-9]\d* bytes of the next received",
    Behaviour.GARBAGE: r"the peer answered like an HTTP server \('HTTP/1\.1 400 Bad Request'"
    r"\.\.\.\): is this the ctl port\?",
    Behaviour.HUGE_LENGTH: r"reply of 2147483658 bytes exceeds max_reply_bytes 1048576",
    Behaviour.WRONG_COOKIE: r"reply cookie 0x[0-9a-f]+ does not match request cookie",
    Behaviour.DRIBBLE: r"no complete answer within 0\.500s \(0 of \d+ replies and "
    r"[1-9]\d* bytes of the next received\)",
    Behaviour.RESET: r"(ECONNRESET|EPIPE) .*(before the first reply|right after connecting) "
    r"\(Kamailio at its limit of 128",
    Behaviour.EOF_AT_ONCE: r"(before the first reply|right after connecting) \(Kamailio at its "
    r"limit of 128",
}
MISBEHAVIOURS = list(EXPECTED_STAGES)
UNIX_SOAK = (
    Behaviour.SILENT,
    Behaviour.GARBAGE,
    Behaviour.CLOSE_MID_REPLY,
    Behaviour.HUGE_LENGTH,
    Behaviour.EOF_AT_ONCE,
)


@pytest.fixture(scope="module")
def named(hostile: HostileServer) -> dict[Behaviour, Listener]:
    """One TCP listener per misbehaviour, listed in targets.toml by its name."""
    return {behaviour: hostile.listen(behaviour) for behaviour in MISBEHAVIOURS}


@pytest.fixture(scope="module")
def exporter(
    kamailio: KamailioInstance,
    hostile: HostileServer,
    named: dict[Behaviour, Listener],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ExporterProcess]:
    workdir = tmp_path_factory.mktemp("fault-exporter")
    listed = "".join(
        f'[[targets]]\nname = "{behaviour.value}"\naddress = "{listener.address}"\n'
        f"timeout = {TIMEOUT}\n\n"
        for behaviour, listener in named.items()
    )
    config = workdir / "targets.toml"
    config.write_text(f"""
[modules.short]
timeout = {SOAK_TIMEOUT}

[[targets]]
name = "kam"
address = "{kamailio.tcp}"

{listed}
[[allow]]
address = "tcp:127.0.0.1/32:*"
module = "short"

[[allow]]
address = "unix:{hostile.socket_dir}/*"
module = "short"
""")
    process = ExporterProcess(config, "--log.format", "json")
    try:
        yield process
    finally:
        process.stop()


def failed_stages(body: str) -> list[str]:
    return re.findall(r'^kamailio_probe_failure_info\{stage="(\w+)"\} 1\.0$', body, re.MULTILINE)


def assert_healthy(exporter: ExporterProcess) -> None:
    body, elapsed = timed_probe(exporter, "kam")
    assert value(body, "kamailio_up") == 1.0, body
    assert value(body, "kamailio_exporter_collector_success", collector="stats") == 1.0
    assert elapsed < 1.0


@pytest.mark.parametrize("behaviour", MISBEHAVIOURS, ids=lambda b: b.value)
def test_a_misbehaving_peer_fails_at_its_stage_and_leaves_nothing_behind(
    exporter: ExporterProcess, named: dict[Behaviour, Listener], behaviour: Behaviour
) -> None:
    listener = named[behaviour]
    body, elapsed = timed_probe(exporter, behaviour.value, debug="true")
    assert "kamailio_up 0.0" in body, body
    (stage,) = failed_stages(body)
    assert stage in EXPECTED_STAGES[behaviour], body
    assert re.search(f"probe failed at stage {stage}: .*{DEBUG_SAYS[behaviour]}", body), body
    if stage == "timeout":
        assert TIMEOUT <= elapsed < TIMEOUT + 0.5
    else:
        assert elapsed < TIMEOUT
    # The broken connection is closed, not kept in the pool...
    wait_until(lambda: listener.open == 0, 2.0, "the exporter to close the connection")
    # ...a healthy Kamailio is unaffected...
    assert_healthy(exporter)
    # ...and the next probe opens a new connection (exactly one: no retry on a fresh one).
    accepted = listener.accepted
    body, _ = timed_probe(exporter, behaviour.value)
    (again,) = failed_stages(body)
    assert again in EXPECTED_STAGES[behaviour]
    assert listener.accepted == accepted + 1
    wait_until(lambda: listener.open == 0, 2.0, "the exporter to close the connection")


def test_a_unix_socket_whose_file_vanishes(
    exporter: ExporterProcess, hostile: HostileServer
) -> None:
    listener = hostile.listen(Behaviour.HEALTHY, unix=True)
    body, _ = timed_probe(exporter, listener.address)
    assert value(body, "kamailio_up") == 1.0, body
    assert listener.open == 1  # pooled
    # The file goes (a cleaned /run), the server and the pooled connection stay: still up.
    assert listener.path is not None
    listener.path.unlink()
    body, _ = timed_probe(exporter, listener.address)
    assert value(body, "kamailio_up") == 1.0, body
    # The server goes too: the pooled connection is dropped and no new one can be made.
    hostile.close(listener)
    body, elapsed = timed_probe(exporter, listener.address, debug="true")
    assert "kamailio_up 0.0" in body
    assert 'kamailio_probe_failure_info{stage="connect"} 1.0' in body, body
    assert "no socket file there" in body
    assert elapsed < SOAK_TIMEOUT
    wait_until(lambda: listener.open == 0, 2.0, "the exporter to close the connection")
    assert_healthy(exporter)


@pytest.mark.slow
async def test_two_thousand_hostile_probes_leave_no_descriptors_or_memory_behind(
    exporter: ExporterProcess, hostile: HostileServer
) -> None:
    listeners = [hostile.listen(b) for b in MISBEHAVIOURS for _ in range(3)]
    listeners += [hostile.listen(b, unix=True) for b in UNIX_SOAK for _ in range(2)]
    failures: list[str] = []
    slowest = 0.0  # seen by the client
    longest = 0.0  # reported by the probe: its deadline must hold even under load

    async def run(session: aiohttp.ClientSession, count: int, offset: int) -> None:
        limit = asyncio.Semaphore(SOAK_CONCURRENCY)

        async def one(index: int) -> None:
            nonlocal slowest, longest
            # Every 25th probe goes to the healthy Kamailio, among the hostile ones.
            healthy = index % 25 == 0
            target = "kam" if healthy else listeners[index % len(listeners)].address
            async with limit:
                started = time.monotonic()
                async with session.get(
                    f"{exporter.url}/probe", params={"target": target}
                ) as response:
                    text = await response.text()
                elapsed = time.monotonic() - started
            up = value(text, "kamailio_up") if response.status == 200 else None
            if up != (1.0 if healthy else 0.0):
                failures.append(f"{target}: HTTP {response.status}, up {up}: {text[:200]}")
            if not healthy:
                slowest = max(slowest, elapsed)
                longest = max(longest, value(text, "kamailio_probe_duration_seconds") or 0.0)

        await asyncio.gather(*(one(offset + i) for i in range(count)))

    def settled() -> bool:
        return all(listener.open == 0 for listener in listeners)

    # Warm up: every target once or more, and the probe history (100 entries) full.
    async with aiohttp.ClientSession() as session:
        await run(session, 150, 0)
    await asyncio.to_thread(wait_until, settled, 5.0, "hostile connections to close")
    await asyncio.sleep(0.5)  # the client's keep-alive sockets close on the exporter's side
    fds_before, rss_before = exporter.fd_count(), exporter.rss_kib()

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await run(session, SOAK_PROBES, 150)
    duration = time.monotonic() - started
    await asyncio.to_thread(wait_until, settled, 5.0, "hostile connections to close")
    await asyncio.to_thread(
        wait_until,
        lambda: exporter.fd_count() <= fds_before + FD_SLACK,
        5.0,
        "the exporter's descriptors to return to their level",
    )
    fds_after, rss_after = exporter.fd_count(), exporter.rss_kib()
    print(
        f"\n{SOAK_PROBES} probes of {len(listeners)} hostile peers in {duration:.1f} s "
        f"(longest probe {longest:.3f} s, slowest answer {slowest:.3f} s): "
        f"fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB"
    )

    assert failures == []
    assert longest < SOAK_TIMEOUT + 0.25
    assert slowest < SOAK_TIMEOUT + 2.0
    assert fds_after <= fds_before + FD_SLACK
    assert rss_after <= rss_before + RSS_SLACK_KIB
    status, _, metrics = exporter.get("/metrics")
    assert status == 200
    assert value(metrics, "kamailio_exporter_probes_in_flight") == 0
    assert value(metrics, "kamailio_exporter_pool_connections") == 1  # the healthy Kamailio's
    assert_healthy(exporter)
