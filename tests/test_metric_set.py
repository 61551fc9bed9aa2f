"""The metric set against a real Kamailio with real SIP traffic: counters move by exactly the
traffic sent, dispatcher and rtpengine state are read as Kamailio sees them, and the full
output passes promtool and prometheus_client's parser."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from kamailio_harness import KamailioInstance, Sipp
from prometheus_client.parser import text_string_to_metric_families

from probe_exporter.binrpc.address import parse_address
from probe_exporter.binrpc.client import connect
from probe_exporter.service import Exporter, Settings
from probe_exporter.web import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample's value, or None when the output has no such series."""
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def client(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> TestClient[Any, Any]:
    config = tmp_path / "targets.toml"
    config.write_text(f"""
[modules.default]
collectors = ["all"]

[[targets]]
name = "kam"
address = "{kamailio.unix}"
""")
    exporter = await Exporter.start(Settings(config_file=str(config)))
    return await aiohttp_client(create_app(exporter))


async def probe(client: TestClient[Any, Any]) -> str:
    response = await client.get("/probe", params={"target": "kam"})
    assert response.status == 200
    text = await response.text()
    assert value(text, "kamailio_up") == 1.0, text
    return text


async def rpc(kamailio: KamailioInstance, method: str, *params: str | int) -> Any:
    connection = await connect(parse_address(kamailio.unix), timeout=5)
    try:
        return await connection.call(method, *params, timeout=5)
    finally:
        await connection.close()


async def test_counters_move_by_exactly_the_traffic_sent(
    client: TestClient[Any, Any], sipp: Sipp
) -> None:
    before = await probe(client)
    registers, calls, busy = 7, 4, 3
    await asyncio.to_thread(sipp.register, registers)
    await asyncio.to_thread(sipp.calls, calls)
    await asyncio.to_thread(sipp.busy, busy)
    after = await probe(client)

    def moved(name: str, **labels: str) -> float:
        now = value(after, name, **labels)
        assert now is not None, (name, labels)
        return now - (value(before, name, **labels) or 0.0)

    assert moved("kamailio_core_rcv_request_total", method="register") == registers
    assert moved("kamailio_core_rcv_request_total", method="invite") == calls + busy
    assert moved("kamailio_core_rcv_request_total", method="bye") == calls
    assert moved("kamailio_stats_registrar_accepted_regs_total") == registers
    assert moved("kamailio_sl_reply_total", code="4xx") == busy
    # Every call's INVITE and BYE end as UAS transactions with a 2xx.
    assert moved("kamailio_tmx_code_total", code="2xx") == 2 * calls
    # The routing script manages a dialog for every INVITE, busy ones included.
    assert moved("kamailio_dialog", type="processed_dialogs") == calls + busy
    assert moved("kamailio_dialog_processed_dialogs_total") == calls + busy
    assert (value(after, "kamailio_usrloc_users", table="location") or 0) >= registers


async def test_a_dead_probed_dispatcher_destination_reads_down(
    client: TestClient[Any, Any], kamailio: KamailioInstance
) -> None:
    dead = f"sip:127.0.0.1:{kamailio.dispatcher_dead_port}"
    live = f"sip:127.0.0.1:{kamailio.dispatcher_live_port}"
    labels = {"set_id": "1", "set_name": ""}
    for _ in range(50):  # keepalives go out every second; the first failure marks it inactive
        text = await probe(client)
        if value(text, "kamailio_dispatcher_target_up", **labels, destination=dead) == 0.0:
            break
        await asyncio.sleep(0.2)
    assert value(text, "kamailio_dispatcher_target_up", **labels, destination=dead) == 0.0
    assert (
        value(
            text, "kamailio_dispatcher_target_state", **labels, destination=dead, state="inactive"
        )
        == 1.0
    )
    assert value(text, "kamailio_dispatcher_target_up", **labels, destination=live) == 1.0
    assert value(text, "kamailio_dispatcher_target_weight", **labels, destination=live) == 50


class FakeRtpengine(asyncio.DatagramProtocol):
    """Answers rtpengine's NG `ping` with `pong`: the only command Kamailio sends while idle
    (the real daemon is a large package; what is tested here is Kamailio's view of it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cookie, _, command = data.partition(b" ")
        if b"4:ping" in command:
            self.transport.sendto(cookie + b" d6:result4:ponge", addr)  # type: ignore[attr-defined]


async def test_rtpengine_down_then_up_is_reflected(
    client: TestClient[Any, Any], kamailio: KamailioInstance
) -> None:
    url = f"udp:127.0.0.1:{kamailio.rtpengine_ng_port}"
    labels = {"url": url, "set": "0", "index": "0", "weight": "1"}
    await rpc(kamailio, "rtpengine.ping", "all")  # nothing listens: Kamailio marks it disabled
    text = await probe(client)
    assert value(text, "kamailio_rtpengine_enabled", **labels) == 0.0

    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        FakeRtpengine, local_addr=("127.0.0.1", kamailio.rtpengine_ng_port)
    )
    try:
        # The first ping may read the ICMP error left by the failed one: try a few times.
        for _ in range(3):
            reply = await rpc(kamailio, "rtpengine.enable", "all", 1)
            if reply[0].get("status") == "enable":
                break
        text = await probe(client)
        assert value(text, "kamailio_rtpengine_enabled", **labels) == 1.0
    finally:
        transport.close()
    await rpc(kamailio, "rtpengine.ping", "all")
    text = await probe(client)
    assert value(text, "kamailio_rtpengine_enabled", **labels) == 0.0


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed: apt-get install -y prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


async def test_full_output_passes_promtool_and_parses_back(
    client: TestClient[Any, Any], sipp: Sipp
) -> None:
    await asyncio.to_thread(sipp.register, 2)
    text = await probe(client)
    result = await asyncio.to_thread(
        subprocess.run,
        [promtool(), "check", "metrics"],
        input=text,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""
    parsed = samples(text)
    sample_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(parsed) == len(sample_lines)  # lossless: every line is one distinct sample
    collectors = {
        dict(labels)["collector"]: v
        for (name, labels), v in parsed.items()
        if name == "kamailio_exporter_collector_success"
    }
    # The harness Kamailio loads these modules; the others (dmq, uac) are skipped silently.
    for name in (
        "stats",
        "pkg",
        "tcp_info",
        "core",
        "shmmem",
        "tm",
        "sl",
        "rtpengine",
        "dispatcher",
        "dialog",
        "htable",
    ):
        assert collectors.get(name) == 1.0, (name, collectors)
    assert "dmq" not in collectors
    assert "uac" not in collectors
