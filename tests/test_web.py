"""The HTTP layer without Kamailio: status codes, refusals, overload, health, /sd, /config, /logs,
debug output and the failure stages a probe reaches without any Kamailio (resolve, connect,
timeout). Targets point to a closed loopback port, or to a listener that never answers."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import TWO_MODULES, ClientFactory, get_probe, value
from kamailio_harness import free_ports

from probe_exporter import config as config_module
from probe_exporter.probelog import probe_logger
from probe_exporter.service import Exporter, Settings
from probe_exporter.web import create_app


class Listener:
    """A TCP listener on 127.0.0.1 counting connections and never answering (a hung peer)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.read()  # returns when the client closes
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def hung() -> AsyncIterator[Listener]:
    listener = Listener()
    await listener.start()
    yield listener
    await listener.stop()


def write_config(path: Path, hung_port: int, extra: str = "") -> Path:
    (closed,) = free_ports("tcp")  # nothing listens there: connecting is refused at once
    path.write_text(f"""
{TWO_MODULES}
[[targets]]
name = "closed"
address = "tcp:127.0.0.1:{closed}"
labels = {{ site = "lab", role = "sbc" }}
timeout = 1.0

[[targets]]
name = "closed-fast"
address = "tcp:127.0.0.1:{closed}"
module = "fast"
xhttp_prom_url = "http://user:hunter2@127.0.0.1:{closed}/metrics?token=t0ken"

[[targets]]
name = "hung"
address = "tcp:127.0.0.1:{hung_port}"
timeout = 1.0

[[allow]]
address = "tcp:127.0.0.0/8:{closed}"

[[allow]]
address = "tcp:*.kamailio.test:2046"
{extra}
""")
    return path


async def start(
    aiohttp_client: ClientFactory, config: Path, **settings: Any
) -> tuple[TestClient[Any, Any], Exporter]:
    exporter = await Exporter.start(Settings(config_file=str(config), **settings))
    return await aiohttp_client(create_app(exporter)), exporter


@pytest.fixture
async def client(
    tmp_path: Path, aiohttp_client: ClientFactory, hung: Listener
) -> TestClient[Any, Any]:
    return (await start(aiohttp_client, write_config(tmp_path / "targets.toml", hung.port)))[0]


async def rejected(client: TestClient[Any, Any], reason: str) -> float | None:
    metrics = await (await client.get("/metrics")).text()
    return value(metrics, "kamailio_exporter_probes_rejected_total", reason=reason)


async def test_bad_requests_are_400_and_counted(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/probe")).status == 400
    assert (await client.get("/probe?target=closed&target=hung")).status == 400
    assert (await client.get("/probe", params={"target": "x" * 1025})).status == 400
    response = await client.get("/probe?target=closed&module=nope")
    assert response.status == 400
    assert await response.text() == "unknown module 'nope'\n"
    response = await client.get(
        "/probe?target=closed", headers={"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    )
    assert response.status == 400
    assert "X-Prometheus-Scrape-Timeout-Seconds is not a number" in await response.text()
    assert await rejected(client, "bad_request") == 5
    assert await rejected(client, "forbidden") == 0


async def test_forbidden_targets_are_403_and_never_connected_to(
    client: TestClient[Any, Any], hung: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    forbidden = f"tcp:127.0.0.1:{hung.port}"  # listening, but no rule allows its port
    targets = (
        forbidden,
        forbidden.replace(":", "%3A"),
        "unix:/etc/../run/x",
        f"tcp:localhost:{hung.port}",
        "nonsense",
    )
    with caplog.at_level(logging.WARNING, logger="probe_exporter"):
        for target in targets:
            status, text = await get_probe(client, target=target)
            assert status == 403, (target, status, text)
            assert "\n" not in text.strip()
    assert hung.connections == 0
    assert await rejected(client, "forbidden") == len(targets)
    # Logged once per text: the percent-encoded form arrives decoded, as the first text.
    warned = [r.target for r in caplog.records if r.getMessage().startswith("target rejected")]  # type: ignore[attr-defined]
    assert sorted(warned) == sorted(set(targets) - {forbidden.replace(":", "%3A")})


async def test_a_name_that_does_not_resolve_fails_at_stage_resolve(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_such_name(host: str, port: int | None, kind: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(config_module.LOOKUPS, "lookup", no_such_name)
    status, text = await get_probe(client, target="tcp:gone.kamailio.test:2046", debug="true")
    assert status == 200
    assert re.search(
        r"^ +\d+\.\d{4}s error probe failed at stage resolve: cannot resolve "
        r"gone\.kamailio\.test: Name or service not known$",
        text,
        re.MULTILINE,
    )
    assert "kamailio_up 0" in text
    assert 'kamailio_probe_failure_info{stage="resolve"} 1' in text
    assert "target: tcp:gone.kamailio.test:2046\nmodule: default\n" in text
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_probes_total", module="default", result="failure") == 1


async def test_a_refused_connection_fails_at_stage_connect(client: TestClient[Any, Any]) -> None:
    started = time.monotonic()
    status, text = await get_probe(client, target="closed")
    assert status == 200
    assert time.monotonic() - started < 2.0  # the deadline (1 s) + 1 s
    assert value(text, "kamailio_up") == 0.0
    assert value(text, "kamailio_probe_failure_info", stage="connect") == 1.0
    assert value(text, "kamailio_probe_timeout_seconds") == 1.0


async def test_a_hung_target_times_out_within_the_scrape_header_deadline(
    client: TestClient[Any, Any], hung: Listener
) -> None:
    started = time.monotonic()
    response = await client.get(
        "/probe",
        params={"target": "hung", "debug": "true"},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.2"},
    )
    text = await response.text()
    assert response.status == 200
    assert time.monotonic() - started < 1.7  # the deadline (0.7 s) + 1 s
    assert 'kamailio_probe_failure_info{stage="timeout"} 1' in text
    assert "kamailio_probe_timeout_seconds 0.7" in text
    assert "timeout: 0.700s (scrape timeout header less the offset)" in text
    assert re.search(
        r"error probe failed at stage timeout: no complete answer within 0\.700s "
        r"\(0 of \d+ replies received, not a byte on this connection: a hung Kamailio, or a "
        r"port that is not ctl's, as SIP and HTTP ports stay silent\)$",
        text,
        re.MULTILINE,
    )
    # The broken connection was not kept: the next probe opens a new one.
    await client.get(
        "/probe", params={"target": "hung"}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.8"}
    )
    assert hung.connections == 2


async def test_overload_answers_503_at_once(
    tmp_path: Path, aiohttp_client: ClientFactory, hung: Listener
) -> None:
    config = write_config(tmp_path / "targets.toml", hung.port)
    client, exporter = await start(aiohttp_client, config, max_concurrent=2)
    slow = [asyncio.create_task(get_probe(client, target="hung")) for _ in range(2)]
    for _ in range(100):  # both probes in flight, bounded in time
        if exporter.in_flight == 2:
            break
        await asyncio.sleep(0.02)
    response = await client.get("/probe", params={"target": "closed"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.text() == "more than 2 probes in flight\n"
    await asyncio.gather(*slow)
    assert (await get_probe(client, target="closed"))[0] == 200
    assert await rejected(client, "overload") == 1
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_probes_in_flight") == 0


async def test_debug_output_config_and_landing_page_hide_secrets(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/probe", params={"target": "closed-fast", "debug": "true"})
    text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert text.startswith("Logs for the probe:\n")
    assert "probe failed at stage connect" in text
    assert "Metrics that would have been returned:\n# HELP" in text
    assert "kamailio_up 0" in text
    assert "Module configuration:\ntarget: closed-fast\n" in text
    assert "collectors: stats\n" in text
    assert "xhttp_prom: cannot connect: ECONNREFUSED (Connection refused) from " in text
    assert "http://<secret>@127.0.0.1:" in text
    assert "/metrics?token=<secret>" in text
    pages = [text]
    for path in ("/config", "/", "/logs?target=closed-fast"):
        response = await client.get(path)
        assert response.status == 200
        pages.append(await response.text())
    assert pages[-1] == text  # /logs shows what debug=true showed
    for page in pages:
        assert "hunter2" not in page
        assert "t0ken" not in page
    assert "<secret>" in pages[1]


async def test_logs_pages_and_landing_page(client: TestClient[Any, Any]) -> None:
    await get_probe(client, target="closed")
    await get_probe(client, target="closed-fast")
    page = await (await client.get("/")).text()
    recent = page.split('<h2 id="probes">Recent probes</h2>')[1]
    assert recent.index(">closed-fast<") < recent.index(">closed<")  # newest first
    assert 'FAILURE</span> <span class="stage">connect</span>' in recent
    first = await (await client.get("/logs", params={"id": "1"})).text()
    assert "Module configuration:\ntarget: closed\naddress: tcp:127.0.0.1:" in first
    assert (await client.get("/logs", params={"id": "999999"})).status == 404
    assert (await client.get("/logs", params={"id": "x"})).status == 400
    assert (await client.get("/logs")).status == 400
    assert (await client.get("/logs?id=1&target=closed")).status == 400


async def test_health_readiness_and_reload(
    tmp_path: Path, aiohttp_client: ClientFactory, hung: Listener
) -> None:
    config = write_config(tmp_path / "targets.toml", hung.port)
    client, exporter = await start(aiohttp_client, config)
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200
    good = config.read_text()
    config.write_text(good + "\n[[targets]]\nname = 'closed'\naddress = 'tcp:127.0.0.1:1'\n")
    response = await client.post("/-/reload")
    assert response.status == 500
    assert "closed" in await response.text()
    assert (await client.post("/-/reload")).status == 500
    config.write_text(good)
    assert await (await client.post("/-/reload")).text() == "config unchanged\n"
    assert (await client.get("/-/reload")).status == 405
    exporter.draining = True
    assert (await client.get("/-/ready")).status == 503


async def test_service_discovery_lists_targets_with_labels(client: TestClient[Any, Any]) -> None:
    groups = await (await client.get("/sd")).json()
    by_target = {g["targets"][0]: g["labels"] for g in groups}
    assert set(by_target) == {"closed", "closed-fast", "hung"}
    assert by_target["closed"]["site"] == "lab"
    assert by_target["closed-fast"]["__param_module"] == "fast"
    assert by_target["closed-fast"]["__meta_kamailio_target_module"] == "fast"


async def test_an_invalid_config_fails_the_start(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text("[pool]\nidle_ttl = 'soon'\n")
    with pytest.raises(ValueError, match="idle_ttl"):
        await Exporter.start(Settings(config_file=str(path)))


def test_probe_log_lines_are_logging_records_formatted_when_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plog = probe_logger("kam", "default", time.monotonic())
    with caplog.at_level(logging.INFO, logger="probe_exporter.probe"):
        plog.debug("collector %s: %d families", "stats", 3)
        plog.error("a message with 100% and no arguments")
    first, second = plog.capture.records
    assert first.msg == "collector %s: %d families"
    assert first.args == ("stats", 3)
    assert (first.target, first.probe_module) == ("kam", "default")  # type: ignore[attr-defined]
    line_one, line_two = plog.capture.lines
    assert re.fullmatch(r" +\d+\.\d{4}s debug collector stats: 3 families", line_one)
    assert line_two.endswith("s error a message with 100% and no arguments")
    # Nothing reaches the process log until the service passes the log on; then only what
    # --log.prober lets through, with the probe's context.
    assert not caplog.records
    with caplog.at_level(logging.INFO, logger="probe_exporter.probe"):
        plog.capture.forward()
    (forwarded,) = caplog.records
    assert forwarded is second
