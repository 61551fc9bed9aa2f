"""The metric set against real Kamailios (5.6 on the host, 6.0 and 6.1 from Debian chroots, see
kamailio_harness.VERSIONS) with real SIP traffic: counters move by exactly the traffic sent;
dispatcher, held dialogs and profiles, rtpengine, htable, TLS, uac registrations and a two-node
DMQ are read as Kamailio sees them; and the full output passes promtool and prometheus_client's
parser."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import ClientFactory, samples, value
from kamailio_harness import VERSIONS, KamailioInstance, KamailioVersion, Sipp

from probe_exporter.binrpc.address import parse_address
from probe_exporter.binrpc.client import connect
from probe_exporter.service import Exporter, Settings
from probe_exporter.web import create_app

KamailioFactory = Callable[..., KamailioInstance]

# Every test here runs once per Kamailio version, each version's Kamailio shared by its tests.
pytestmark = pytest.mark.parametrize(
    "kamailio_version", VERSIONS, indirect=True, scope="module", ids=str
)


async def exporter(
    aiohttp_client: ClientFactory, tmp_path: Path, *kamailios: KamailioInstance
) -> TestClient[Any, Any]:
    """An exporter with the targets kam (the first Kamailio), kam1, kam2... (the others)."""
    config = tmp_path / "targets.toml"
    targets = "".join(
        f'''
[[targets]]
name = "kam{index or ""}"
address = "{instance.unix}"
'''
        for index, instance in enumerate(kamailios)
    )
    config.write_text(f"""
[modules.default]
collectors = ["all"]
dialog_profiles = ["inbound"]
{targets}""")
    return await aiohttp_client(create_app(await Exporter.start(Settings(config_file=str(config)))))


@pytest.fixture
async def client(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> TestClient[Any, Any]:
    return await exporter(aiohttp_client, tmp_path, kamailio)


async def probe(client: TestClient[Any, Any], target: str = "kam") -> str:
    response = await client.get("/probe", params={"target": target})
    assert response.status == 200
    text = await response.text()
    assert value(text, "kamailio_up") == 1.0, text
    return text


async def probe_until(
    client: TestClient[Any, Any], ready: Callable[[str], bool], target: str = "kam"
) -> str:
    """Probes until `ready` holds for the output (bounded: 100 probes, 0.2 s apart)."""
    for _ in range(100):
        text = await probe(client, target)
        if ready(text):
            break
        await asyncio.sleep(0.2)
    return text


def collector_ok(text: str, name: str) -> bool:
    return value(text, "kamailio_exporter_collector_success", collector=name) == 1.0


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
    # The routing script stores every INVITE's Call-ID in the htable "calls".
    assert moved("kamailio_htable_items", table="calls") == calls + busy
    assert (value(after, "kamailio_usrloc_users", table="location") or 0) >= registers


async def test_build_info_names_the_version_with_a_stable_os(
    client: TestClient[Any, Any], kamailio_version: KamailioVersion
) -> None:
    text = await probe(client)
    (labels,) = [
        dict(series)
        for (name, series), v in samples(text).items()
        if name == "kamailio_build_info" and v == 1.0
    ]
    assert labels["version"].startswith(kamailio_version.name + ".")
    # 6.1 says "x86_64/Linux", earlier versions "x86_64/linux": the label stays the same.
    assert labels["os"] == "linux"


async def test_held_dialogs_and_their_profile_are_counted(
    client: TestClient[Any, Any], sipp: Sipp
) -> None:
    held = 3

    def confirmed(text: str) -> bool:
        return value(text, "kamailio_dlg_stats_active_ongoing") == held

    calls = asyncio.create_task(asyncio.to_thread(sipp.calls, held, hold_ms=6000))
    try:
        during = await probe_until(client, lambda text: confirmed(text) or calls.done())
    finally:
        await calls
    assert value(during, "kamailio_dlg_stats_active_ongoing") == held
    assert value(during, "kamailio_dlg_profile_size", profile="inbound") == held
    after = await probe_until(
        client, lambda text: value(text, "kamailio_dlg_stats_active_all") == 0
    )
    assert value(after, "kamailio_dlg_stats_active_all") == 0
    assert value(after, "kamailio_dlg_profile_size", profile="inbound") == 0


async def test_an_open_tls_connection_is_counted(
    client: TestClient[Any, Any], kamailio: KamailioInstance
) -> None:
    assert kamailio.tls, "tls.so is not installed: apt-get install -y kamailio-tls-modules"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    before = await probe(client)
    assert value(before, "kamailio_tls_info_max_connections") is not None
    with (
        socket.create_connection(("127.0.0.1", kamailio.tls_port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        assert tls.version() is not None  # the handshake completed
        text = await probe_until(
            client, lambda text: (value(text, "kamailio_tls_info_opened_connections") or 0) >= 1
        )
        assert (value(text, "kamailio_tls_info_opened_connections") or 0) >= 1
    assert collector_ok(text, "tls")


async def test_uac_registrations_read_as_kamailio_reports_them(
    kamailio_factory: KamailioFactory, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    kamailio = kamailio_factory(uac=True)
    client = await exporter(aiohttp_client, tmp_path, kamailio)
    peer1 = {"l_uuid": "peer1", "r_username": "uacpeer1", "r_domain": "127.0.0.1"}
    peer2 = {"l_uuid": "peer2", "r_username": "uacpeer2", "r_domain": "127.0.0.1"}
    peer3 = {"l_uuid": "peer3", "r_username": "uacpeer3", "r_domain": "127.0.0.1"}
    # peer1 registers with this Kamailio itself within a timer tick or two.
    text = await probe_until(
        client, lambda text: value(text, "kamailio_uac_registration_registered", **peer1) == 1
    )
    assert collector_ok(text, "uac"), text
    assert value(text, "kamailio_uac_registration_registered", **peer1) == 1
    assert value(text, "kamailio_uac_registration_state", **peer1, state="registered") == 1
    assert value(text, "kamailio_uac_registration_state", **peer3, state="disabled") == 1
    assert value(text, "kamailio_uac_registration_registered", **peer3) == 0
    for peer in (peer1, peer2, peer3):
        assert value(text, "kamailio_uac_registration_expires_seconds", **peer) == 300
        states = [
            value(text, "kamailio_uac_registration_state", **peer, state=state)
            for state in ("registered", "registering", "failed", "disabled")
        ]
        assert None not in states, (peer, states)
        # peer2 is wherever it got to
        assert sorted(s for s in states if s is not None) == [0, 0, 0, 1], (peer, states)


async def test_dmq_nodes_of_a_two_node_bus(
    kamailio_factory: KamailioFactory,
    kamailio_version: KamailioVersion,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> None:
    # first is its own notification peer (dmq.list_nodes lists it twice, the local entry
    # second); second joins the bus through first.
    first = kamailio_factory(dmq=True)
    second = kamailio_factory(dmq=True, dmq_notification_port=first.sip_port)
    client = await exporter(aiohttp_client, tmp_path, first, second)
    first_node = {"host": "127.0.0.1", "port": str(first.sip_port), "proto": "*"}
    second_node = {"host": "127.0.0.1", "port": str(second.sip_port), "proto": "*"}

    def up(text: str, node: dict[str, str]) -> float | None:
        return value(text, "kamailio_dmq_node_up", **node)

    def listed(text: str) -> set[tuple[tuple[str, str], ...]]:
        return {
            series for (name, series), _ in samples(text).items() if name == "kamailio_dmq_node_up"
        }

    text = await probe_until(client, lambda text: up(text, first_node) == 1, "kam1")
    assert collector_ok(text, "dmq"), text
    assert up(text, first_node) == 1
    assert value(text, "kamailio_dmq_node_state", **first_node, state="active") == 1
    assert value(text, "kamailio_dmq_node_local", **first_node) == 0
    assert value(text, "kamailio_dmq_node_local", **second_node) == 1
    assert len(listed(text)) == 2

    # 5.6 adds second to first's list from its notification; 6.0 and 6.1 also match a
    # notifying node by IP address, and on one loopback address first takes second for itself.
    learns = kamailio_version.name == "5.6"
    text = await probe_until(client, lambda text: not learns or up(text, second_node) == 1)
    assert collector_ok(text, "dmq"), text
    assert value(text, "kamailio_dmq_node_local", **first_node) == 1
    assert up(text, first_node) == 1
    assert len(listed(text)) == (2 if learns else 1)
    if learns:
        assert up(text, second_node) == 1
        assert value(text, "kamailio_dmq_node_local", **second_node) == 0


async def test_shared_memory_above_4_gib_is_exact(
    kamailio_factory: KamailioFactory, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    # 5.6 sends core.shmmem as 32-bit INTs: 4200 MiB would wrap to 104 MiB.
    kamailio = kamailio_factory(shm_mb=4200)
    client = await exporter(aiohttp_client, tmp_path, kamailio)
    text = await probe(client)
    assert collector_ok(text, "shmmem"), text
    assert value(text, "kamailio_core_shmmem_bytes", type="total") == 4200 * 2**20
    free = value(text, "kamailio_core_shmmem_bytes", type="free")
    assert free is not None
    assert 4 * 2**30 < free < 4200 * 2**20


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
