"""Load on the exporter (its real command) and on the real Kamailios behind it, bounded in time.

- 50 concurrent probes per target: all succeed, and no Kamailio ever sees more ctl connections
  than the pool allows (counted by Kamailio itself, `ctl.connections`), far under its 128.
- Above --probe.max-concurrent: 503 with Retry-After at once, no queue, memory bounded.
- 100 config reloads, valid and invalid in turn, under continuous probing: no probe fails, the
  reload metric follows each reload, and replaced pools do not pile up connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers import ExporterProcess, samples, value
from hostile_binrpc import Behaviour, HostileServer
from kamailio_harness import KamailioInstance

from probe_exporter.binrpc.address import parse_address
from probe_exporter.binrpc.client import connect

CONCURRENCY = 50
PER_TARGET = 2
KAMAILIO_LIMIT = 128


class ConnectionWatcher:
    """Asks each Kamailio, over its ctl UDP socket (which is no stream connection and so does not
    count itself), how many stream connections it has open, every few milliseconds."""

    def __init__(self, instances: dict[str, KamailioInstance]) -> None:
        self.instances = instances
        self.most = dict.fromkeys(instances, 0)
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        connections = {
            name: await connect(parse_address(k.udp), timeout=2.0)
            for name, k in self.instances.items()
        }
        try:
            while True:
                for name, connection in connections.items():
                    (count,) = await connection.call("ctl.connections", timeout=2.0)
                    assert isinstance(count, int)
                    self.most[name] = max(self.most[name], count)
                self.samples += 1
                await asyncio.sleep(0.005)
        finally:
            for connection in connections.values():
                await connection.close()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[ConnectionWatcher]:
        self._task = asyncio.create_task(self._watch())
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            if self._task.done() and not self._task.cancelled() and self._task.exception():
                raise AssertionError("the connection watcher failed") from self._task.exception()


def collector_results(text: str) -> dict[str, float]:
    return {
        dict(labels)["collector"]: v
        for (name, labels), v in samples(text).items()
        if name == "kamailio_exporter_collector_success"
    }


async def fetch(
    session: aiohttp.ClientSession, url: str, **params: str
) -> tuple[int, dict[str, str], str, float]:
    started = time.monotonic()
    async with session.get(url, params=params) as response:
        text = await response.text()
        return response.status, dict(response.headers), text, time.monotonic() - started


@pytest.fixture
def exporters(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    started: list[ExporterProcess] = []

    def start(config: Path, *args: str) -> ExporterProcess:
        process = ExporterProcess(config, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def test_fifty_concurrent_probes_per_target_stay_within_the_pool_limit(
    kamailio_factory: Callable[[], KamailioInstance],
    tmp_path: Path,
    exporters: Callable[..., ExporterProcess],
) -> None:
    fleet = {name: kamailio_factory() for name in ("a", "b", "c")}
    config = tmp_path / "targets.toml"
    config.write_text(f"""
[pool]
per_target = {PER_TARGET}

[[targets]]
name = "a-tcp"
address = "{fleet["a"].tcp}"

[[targets]]
name = "b-unix"
address = "{fleet["b"].unix}"

[[targets]]
name = "c-tcp"
address = "{fleet["c"].tcp}"

[[targets]]
name = "c-unix"
address = "{fleet["c"].unix}"
""")
    exporter = exporters(config)
    targets = ["a-tcp", "b-unix", "c-tcp", "c-unix"]
    # Each Kamailio: its targets times the per-target limit.
    allowed = {"a": PER_TARGET, "b": PER_TARGET, "c": 2 * PER_TARGET}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        expected = {}
        for target in targets:  # one probe each, alone: what every probe must match
            status, _, text, _ = await fetch(session, f"{exporter.url}/probe", target=target)
            assert status == 200
            assert value(text, "kamailio_up") == 1.0, text
            expected[target] = collector_results(text)
            assert expected[target]["stats"] == 1.0
        watcher = ConnectionWatcher(fleet)
        async with watcher.watching():
            started = time.monotonic()
            results = await asyncio.gather(
                *(
                    fetch(session, f"{exporter.url}/probe", target=target)
                    for target in targets
                    for _ in range(CONCURRENCY)
                )
            )
            duration = time.monotonic() - started
            await asyncio.sleep(0.05)  # one more sample after the last probe
    print(
        f"\n{len(results)} concurrent probes in {duration:.2f} s; most ctl connections "
        f"per Kamailio: {watcher.most} ({watcher.samples} samples)"
    )
    for target, (status, _, text, _) in zip(
        (t for t in targets for _ in range(CONCURRENCY)), results, strict=True
    ):
        assert status == 200
        assert value(text, "kamailio_up") == 1.0, text
        assert collector_results(text) == expected[target]
    assert watcher.samples > 3
    for name, most in watcher.most.items():
        assert most <= allowed[name], (name, most)
    assert sum(watcher.most.values()) < KAMAILIO_LIMIT // 8
    status, _, metrics = exporter.get("/metrics")
    connections = value(metrics, "kamailio_exporter_pool_connections")
    assert connections is not None
    assert connections <= 4 * PER_TARGET
    assert value(metrics, "kamailio_exporter_probes_total", module="default", result="failure") == 0


async def test_above_the_concurrency_limit_answers_503_at_once_without_a_queue(
    tmp_path: Path, exporters: Callable[..., ExporterProcess]
) -> None:
    hostile = HostileServer(tmp_path)
    try:
        silent = hostile.listen(Behaviour.SILENT)
        config = tmp_path / "targets.toml"
        config.write_text(
            f'[[targets]]\nname = "silent"\naddress = "{silent.address}"\ntimeout = 3.0\n'
        )
        exporter = exporters(config, "--probe.max-concurrent", "8")
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"{exporter.url}/probe"
            holding = [asyncio.create_task(fetch(session, url, target="silent")) for _ in range(8)]
            await asyncio.sleep(0.5)  # all 8 in flight, waiting for an answer never coming
            rss_before = exporter.rss_kib()
            started = time.monotonic()
            rejected = []
            for _ in range(10):  # 2,000 requests, 200 at a time
                rejected += await asyncio.gather(
                    *(fetch(session, url, target="silent") for _ in range(200))
                )
            burst = time.monotonic() - started
            rss_after = exporter.rss_kib()
            held = await asyncio.gather(*holding)
    finally:
        hostile.stop()
    print(
        f"\n2000 requests over the limit answered in {burst:.2f} s, slowest "
        f"{max(r[3] for r in rejected):.3f} s; RSS {rss_before} -> {rss_after} KiB"
    )
    assert {status for status, _, _, _ in rejected} == {503}
    assert all(headers.get("Retry-After") == "1" for _, headers, _, _ in rejected)
    assert max(elapsed for _, _, _, elapsed in rejected) < 1.0  # answered, not queued
    assert burst < 15.0
    assert rss_after - rss_before < 8 * 1024
    for status, _, text, elapsed in held:  # the probes in flight ran to their deadline
        assert status == 200
        assert value(text, "kamailio_probe_failure_info", stage="timeout") == 1.0
        assert 2.9 < elapsed < 4.0
    _, _, metrics = exporter.get("/metrics")
    assert value(metrics, "kamailio_exporter_probes_rejected_total", reason="overload") == 2000
    assert value(metrics, "kamailio_exporter_probes_in_flight") == 0


RELOADS = 100


def reload_config(kamailio: KamailioInstance, generation: int) -> str:
    """A valid config; every other one changes the pool settings, so the pool is replaced."""
    return f"""
[pool]
idle_ttl = {300 + generation % 4 // 2}

[modules.default]
timeout = 3.0

[[targets]]
name = "kam-tcp"
address = "{kamailio.tcp}"
labels = {{ generation = "{generation}" }}

[[targets]]
name = "kam-unix"
address = "{kamailio.unix}"
"""


@pytest.mark.slow
async def test_a_hundred_reloads_under_continuous_probing_fail_no_probe(
    kamailio_factory: Callable[[], KamailioInstance],
    tmp_path: Path,
    exporters: Callable[..., ExporterProcess],
) -> None:
    kamailio = kamailio_factory()
    config = tmp_path / "targets.toml"
    config.write_text(reload_config(kamailio, 0))
    exporter = exporters(config)
    probes: list[tuple[str, int, float | None]] = []
    stop = asyncio.Event()

    async def keep_probing(session: aiohttp.ClientSession, target: str) -> None:
        while not stop.is_set():
            status, _, text, _ = await fetch(session, f"{exporter.url}/probe", target=target)
            probes.append((target, status, value(text, "kamailio_up") if status == 200 else None))

    reload_results: list[tuple[bool, int, float | None]] = []
    watcher = ConnectionWatcher({"kam": kamailio})
    async with aiohttp.ClientSession() as session, watcher.watching():
        probing = [
            asyncio.create_task(keep_probing(session, target))
            for target in ("kam-tcp", "kam-unix", "kam-tcp", "kam-unix")
        ]
        started = time.monotonic()
        for generation in range(1, RELOADS + 1):
            valid = generation % 2 == 0
            config.write_text(
                reload_config(kamailio, generation)
                if valid
                else f"[[targets]]\nname = 'broken-{generation}'\n"
            )
            async with session.post(f"{exporter.url}/-/reload") as response:
                await response.read()
                status = response.status
            async with session.get(f"{exporter.url}/metrics") as response:
                metrics = await response.text()
            reload_results.append(
                (valid, status, value(metrics, "kamailio_exporter_config_last_reload_successful"))
            )
            await asyncio.sleep(0.02)
        duration = time.monotonic() - started
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*probing)
    print(
        f"\n{RELOADS} reloads in {duration:.1f} s during {len(probes)} probes; "
        f"most ctl connections: {watcher.most['kam']}"
    )
    assert [(valid, status) for valid, status, _ in reload_results] == [
        (g % 2 == 0, 200 if g % 2 == 0 else 500) for g in range(1, RELOADS + 1)
    ]
    assert [metric for _, _, metric in reload_results] == [
        1.0 if g % 2 == 0 else 0.0 for g in range(1, RELOADS + 1)
    ]
    assert len(probes) > RELOADS
    assert [p for p in probes if p[1:] != (200, 1.0)] == []
    _, _, sd = exporter.get("/sd")
    assert f'"generation": "{RELOADS}"' in sd
    # Two targets, one connection each; a replaced pool closes its idle connections at once
    # and a leased one when its probe ends, so a swap briefly adds one per target at most.
    assert watcher.most["kam"] <= 2 * 2
