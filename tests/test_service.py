"""The /probe service end to end through aiohttp's test client, against a real Kamailio."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from helpers import samples, value
from kamailio_harness import KamailioInstance, free_ports
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from probe_exporter import __version__
from probe_exporter.probe import ProbeLog
from probe_exporter.service import Exporter, Settings
from probe_exporter.web import create_app

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 counting connections; optionally answers nothing (hangs)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.read()  # never answers; returns when the client closes
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def hung_server() -> AsyncIterator[ConnectionCounter]:
    server = ConnectionCounter()
    await server.start()
    yield server
    await server.stop()


def write_config(path: Path, kamailio: KamailioInstance, extra: str = "") -> Path:
    (dead_port,) = free_ports("tcp")
    path.write_text(f"""
[modules.default]
collectors = ["all"]
timeout = 3.0

[modules.fast]
collectors = ["stats"]
timeout = 1.0

[[targets]]
name = "kam-tcp"
address = "{kamailio.tcp}"
labels = {{ site = "lab", role = "sbc" }}
xhttp_prom_url = "{kamailio.metrics_url}"

[[targets]]
name = "kam-unix"
address = "{kamailio.unix}"
module = "fast"

[[targets]]
name = "dead"
address = "tcp:127.0.0.1:{dead_port}"
timeout = 1.0

[[allow]]
address = "tcp:127.0.0.0/8:{kamailio.ctl_tcp_port}"
{extra}
""")
    return path


@pytest.fixture
async def service(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> TestClient[Any, Any]:
    config = write_config(tmp_path / "targets.toml", kamailio)
    exporter = Exporter(Settings(config_file=str(config)))
    return await aiohttp_client(create_app(exporter))


async def probe(client: TestClient[Any, Any], **params: str) -> tuple[int, str]:
    response = await client.get("/probe", params=params)
    return response.status, await response.text()


async def test_listed_names_probe_kamailio_up(service: TestClient[Any, Any]) -> None:
    for name in ("kam-tcp", "kam-unix"):
        status, text = await probe(service, target=name)
        assert status == 200, text
        assert value(text, "kamailio_up") == 1.0
        assert value(text, "kamailio_exporter_collector_success", collector="stats") == 1.0
        assert value(text, "kamailio_core_request_total", method="rcv") is not None
        assert value(text, "kamailio_probe_failure_info", stage="connect") is None


async def test_module_selects_collectors(service: TestClient[Any, Any]) -> None:
    _, text = await probe(service, target="kam-unix")  # the target's module: stats only
    collectors = {
        dict(labels)["collector"]
        for (name, labels) in samples(text)
        if name == "kamailio_exporter_collector_success"
    }
    assert collectors == {"stats"}
    _, text = await probe(service, target="kam-unix", module="default")
    assert value(text, "kamailio_pkgmem_used", entry="0") is not None


async def test_allowed_address_is_probed(
    service: TestClient[Any, Any], kamailio: KamailioInstance
) -> None:
    status, text = await probe(service, target=kamailio.tcp)
    assert status == 200
    assert value(text, "kamailio_up") == 1.0


async def test_xhttp_prom_is_merged_without_duplicates(service: TestClient[Any, Any]) -> None:
    _, text = await probe(service, target="kam-tcp")
    assert value(text, "kamailio_exporter_collector_success", collector="xhttp_prom") == 1.0
    typed = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(typed) == len(set(typed))
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))
    assert "# TYPE kamailio_up gauge" in text


async def test_rejected_target_never_opens_a_socket(
    service: TestClient[Any, Any], hung_server: ConnectionCounter
) -> None:
    forbidden = f"tcp:127.0.0.1:{hung_server.port}"
    for target in (
        forbidden,
        forbidden.replace(":", "%3A"),
        "unix:/etc/../run/x",
        f"tcp:localhost:{hung_server.port}",
        "x" * 5000,
    ):
        status, text = await probe(service, target=target)
        assert status in (400, 403), (target, status, text)
        assert "\n" not in text.strip()
    assert hung_server.connections == 0


async def test_bad_requests(service: TestClient[Any, Any]) -> None:
    assert (await service.get("/probe")).status == 400
    assert (await service.get("/probe?target=kam-tcp&target=kam-unix")).status == 400
    assert (await service.get("/probe?target=kam-tcp&module=nope")).status == 400
    response = await service.get(
        "/probe?target=kam-tcp", headers={"X-Prometheus-Scrape-Timeout-Seconds": "soon"}
    )
    assert response.status == 400


async def test_dead_target_is_http_200_up_0_stage_connect(service: TestClient[Any, Any]) -> None:
    started = time.monotonic()
    status, text = await probe(service, target="dead")
    assert status == 200
    assert time.monotonic() - started < 1.5
    assert value(text, "kamailio_up") == 0.0
    assert value(text, "kamailio_probe_failure_info", stage="connect") == 1.0
    assert value(text, "kamailio_probe_duration_seconds") is not None


async def test_hung_target_times_out_within_the_scrape_header_deadline(
    kamailio: KamailioInstance,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    hung_server: ConnectionCounter,
) -> None:
    config = write_config(
        tmp_path / "targets.toml",
        kamailio,
        f"""
[[targets]]
name = "hung"
address = "tcp:127.0.0.1:{hung_server.port}"
""",
    )
    client = await aiohttp_client(create_app(Exporter(Settings(config_file=str(config)))))
    started = time.monotonic()
    response = await client.get(
        "/probe", params={"target": "hung"}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.2"}
    )
    text = await response.text()
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert value(text, "kamailio_probe_timeout_seconds") == pytest.approx(0.7)
    assert 0.6 < elapsed < 1.2
    assert value(text, "kamailio_up") == 0.0
    assert value(text, "kamailio_probe_failure_info", stage="timeout") == 1.0
    # The broken connection was not kept: the next probe opens a new one.
    await client.get(
        "/probe", params={"target": "hung"}, headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.8"}
    )
    assert hung_server.connections == 2


async def test_restart_between_probes_gives_no_false_zero(
    kamailio_factory: Callable[[], KamailioInstance], tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    instance = kamailio_factory()
    config = write_config(tmp_path / "targets.toml", instance)
    client = await aiohttp_client(create_app(Exporter(Settings(config_file=str(config)))))
    for target in ("kam-tcp", "kam-unix"):
        _, text = await probe(client, target=target)
        assert value(text, "kamailio_up") == 1.0
    instance.restart()
    for target in ("kam-tcp", "kam-unix"):
        _, text = await probe(client, target=target)
        assert value(text, "kamailio_up") == 1.0, text
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_pool_misses_total") == 4.0


async def test_reload_with_a_broken_file_keeps_serving(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    path = write_config(tmp_path / "targets.toml", kamailio)
    good = path.read_text()
    client = await aiohttp_client(create_app(Exporter(Settings(config_file=str(path)))))
    path.write_text(good + "\n[[targets]]\nname = 'kam-tcp'\naddress = 'tcp:127.0.0.1:1'\n")
    response = await client.post("/-/reload")
    assert response.status == 500
    assert "kam-tcp" in await response.text()
    _, text = await probe(client, target="kam-tcp")
    assert value(text, "kamailio_up") == 1.0
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_config_last_reload_successful") == 0.0
    path.write_text(good.replace('name = "kam-unix"', 'name = "renamed"'))
    assert (await client.post("/-/reload")).status == 200
    assert (await probe(client, target="renamed"))[0] == 200
    assert (await probe(client, target="kam-unix"))[0] == 403
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_config_last_reload_successful") == 1.0
    assert (await client.get("/-/reload")).status == 405


async def test_overload_answers_503_at_once(
    kamailio: KamailioInstance,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    hung_server: ConnectionCounter,
) -> None:
    config = write_config(
        tmp_path / "targets.toml",
        kamailio,
        f"""
[[targets]]
name = "hung"
address = "tcp:127.0.0.1:{hung_server.port}"
timeout = 1.0
""",
    )
    client = await aiohttp_client(
        create_app(Exporter(Settings(config_file=str(config), max_concurrent=2)))
    )
    slow = [asyncio.create_task(probe(client, target="hung")) for _ in range(2)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    response = await client.get("/probe", params={"target": "kam-tcp"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 0.2
    await asyncio.gather(*slow)
    assert (await probe(client, target="kam-tcp"))[0] == 200
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_probes_rejected_total", reason="overload") == 1.0


async def test_content_negotiation_and_gzip(service: TestClient[Any, Any]) -> None:
    response = await service.get(
        "/probe",
        params={"target": "kam-tcp"},
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
            "Accept-Encoding": "gzip",
        },
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.headers["Content-Encoding"] == "gzip"
    text = await response.text()  # aiohttp decompresses
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_om(text)}
    assert families["kamailio_up"].samples[0].value == 1.0
    raw = await service.get(
        "/probe",
        params={"target": "kam-tcp"},
        headers={"Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert gzip.decompress(await raw.read()).startswith(b"# HELP")
    plain = await service.get("/probe", params={"target": "kam-tcp"})
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_debug_output_shows_logs_metrics_and_settings(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    config = write_config(
        tmp_path / "targets.toml",
        kamailio,
        """
[[targets]]
name = "with-secret"
address = "tcp:127.0.0.1:1"
xhttp_prom_url = "http://user:hunter2@127.0.0.1:1/metrics"
""",
    )
    client = await aiohttp_client(create_app(Exporter(Settings(config_file=str(config)))))
    response = await client.get("/probe", params={"target": "with-secret", "debug": "true"})
    text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "Logs for the probe:" in text
    assert "probe failed at stage connect" in text
    assert "Metrics that would have been returned:" in text
    assert "kamailio_up 0" in text
    assert "Module configuration:" in text
    assert "<secret>@127.0.0.1:1" in text
    assert "hunter2" not in text
    config_page = await (await client.get("/config")).text()
    assert "hunter2" not in config_page
    assert "<secret>" in config_page
    landing = await (await client.get("/")).text()
    assert "hunter2" not in landing


async def test_self_metrics_carry_no_target_labels(service: TestClient[Any, Any]) -> None:
    await probe(service, target="kam-tcp")
    await probe(service, target="dead")
    text = await (await service.get("/metrics")).text()
    assert value(text, "kamailio_exporter_probes_total", module="default", result="success") == 1
    assert value(text, "kamailio_exporter_probes_total", module="default", result="failure") == 1
    assert value(text, "kamailio_exporter_probes_total", module="fast", result="success") == 0
    assert (
        value(
            text,
            "kamailio_exporter_build_info",
            version=__version__,
            python_version=__import__("platform").python_version(),
        )
        == 1
    )
    assert value(text, "kamailio_exporter_probes_in_flight") == 0
    assert value(text, "kamailio_exporter_pool_connections") == 1
    assert "kam-tcp" not in text
    assert "process_cpu_seconds_total" in text


async def test_service_discovery_lists_targets_with_labels(service: TestClient[Any, Any]) -> None:
    groups = await (await service.get("/sd")).json()
    by_target = {g["targets"][0]: g["labels"] for g in groups}
    assert set(by_target) == {"kam-tcp", "kam-unix", "dead"}
    assert by_target["kam-tcp"]["site"] == "lab"
    assert by_target["kam-unix"]["__param_module"] == "fast"


async def test_landing_page_history_and_logs(service: TestClient[Any, Any]) -> None:
    await probe(service, target="kam-tcp")
    await probe(service, target="dead")
    page = await (await service.get("/")).text()
    recent = page.split("<h2>Recent probes</h2>")[1]
    assert recent.index(">dead<") < recent.index(">kam-tcp<")  # newest first
    assert "<strong>Failure</strong>" in recent
    logs = await service.get("/logs", params={"target": "dead"})
    assert "probe failed at stage connect" in await logs.text()
    logs_up = await (await service.get("/logs", params={"target": "kam-tcp"})).text()
    assert re.search(r"^kamailio_up 1\.0$", logs_up, re.MULTILINE)  # the metrics as returned
    assert re.search(r"s debug +collector stats: \d+ families$", logs_up, re.MULTILINE)
    assert (await service.get("/logs", params={"id": "999999"})).status == 404
    assert (await service.get("/logs")).status == 400


def test_probe_log_lines_are_formatted_when_read() -> None:
    plog = ProbeLog("kam", "default", time.monotonic(), forward=False)
    plog(logging.DEBUG, "collector %s: %d families", "stats", 3)
    plog(logging.ERROR, "a message with 100% and no arguments")
    first, second = plog.lines
    assert re.fullmatch(r" +\d+\.\d{4}s debug collector stats: 3 families", first)
    assert second.endswith("s error a message with 100% and no arguments")


async def test_health_and_readiness(service: TestClient[Any, Any]) -> None:
    assert (await service.get("/-/healthy")).status == 200
    assert (await service.get("/-/ready")).status == 200


async def test_an_invalid_startup_config_fails_the_app(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text("[pool]\nidle_ttl = 'soon'\n")
    exporter = Exporter(Settings(config_file=str(path)))
    app = create_app(exporter)
    runner = web.AppRunner(app)
    with pytest.raises(ValueError, match="idle_ttl"):
        await runner.setup()
    await runner.cleanup()
