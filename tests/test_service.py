"""The /probe service end to end through aiohttp's test client, against a real Kamailio (the
HTTP layer's refusals, limits and failure stages without Kamailio are in test_web.py)."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from helpers import TWO_MODULES, ClientFactory, get_probe, samples, value
from kamailio_harness import KamailioInstance, free_ports
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from probe_exporter import __version__
from probe_exporter.service import Exporter, Settings
from probe_exporter.web import create_app


def write_config(path: Path, kamailio: KamailioInstance, extra: str = "") -> Path:
    (dead_port,) = free_ports("tcp")
    path.write_text(f"""
{TWO_MODULES}
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
    exporter = await Exporter.start(Settings(config_file=str(config)))
    return await aiohttp_client(create_app(exporter))


async def test_listed_names_probe_kamailio_up(service: TestClient[Any, Any]) -> None:
    for name in ("kam-tcp", "kam-unix"):
        status, text = await get_probe(service, target=name)
        assert status == 200, text
        assert value(text, "kamailio_up") == 1.0
        assert value(text, "kamailio_exporter_collector_success", collector="stats") == 1.0
        assert value(text, "kamailio_core_request_total", method="rcv") is not None
        assert value(text, "kamailio_probe_failure_info", stage="connect") is None


async def test_module_selects_collectors(service: TestClient[Any, Any]) -> None:
    _, text = await get_probe(service, target="kam-unix")  # the target's module: stats only
    collectors = {
        dict(labels)["collector"]
        for (name, labels) in samples(text)
        if name == "kamailio_exporter_collector_success"
    }
    assert collectors == {"stats"}
    _, text = await get_probe(service, target="kam-unix", module="default")
    assert value(text, "kamailio_pkgmem_used", entry="0") is not None


async def test_allowed_address_is_probed(
    service: TestClient[Any, Any], kamailio: KamailioInstance
) -> None:
    status, text = await get_probe(service, target=kamailio.tcp)
    assert status == 200
    assert value(text, "kamailio_up") == 1.0


async def test_xhttp_prom_is_merged_without_duplicates(service: TestClient[Any, Any]) -> None:
    _, text = await get_probe(service, target="kam-tcp")
    assert value(text, "kamailio_exporter_collector_success", collector="xhttp_prom") == 1.0
    typed = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(typed) == len(set(typed))
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))
    assert "# TYPE kamailio_up gauge" in text


async def test_restart_between_probes_gives_no_false_zero(
    kamailio_factory: Callable[[], KamailioInstance], tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    instance = kamailio_factory()
    config = write_config(tmp_path / "targets.toml", instance)
    client = await aiohttp_client(
        create_app(await Exporter.start(Settings(config_file=str(config))))
    )
    for target in ("kam-tcp", "kam-unix"):
        _, text = await get_probe(client, target=target)
        assert value(text, "kamailio_up") == 1.0
    instance.restart()
    for target in ("kam-tcp", "kam-unix"):
        _, text = await get_probe(client, target=target)
        assert value(text, "kamailio_up") == 1.0, text
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_pool_misses_total") == 4.0


async def test_reload_with_a_broken_file_keeps_serving(
    kamailio: KamailioInstance, tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    path = write_config(tmp_path / "targets.toml", kamailio)
    good = path.read_text()
    exporter = await Exporter.start(Settings(config_file=str(path)))
    client = await aiohttp_client(create_app(exporter))
    path.write_text(good + "\n[[targets]]\nname = 'kam-tcp'\naddress = 'tcp:127.0.0.1:1'\n")
    response = await client.post("/-/reload")
    assert response.status == 500
    assert "kam-tcp" in await response.text()
    _, text = await get_probe(client, target="kam-tcp")
    assert value(text, "kamailio_up") == 1.0
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_config_last_reload_successful") == 0.0
    path.write_text(good.replace('name = "kam-unix"', 'name = "renamed"'))
    assert (await client.post("/-/reload")).status == 200
    assert (await get_probe(client, target="renamed"))[0] == 200
    assert (await get_probe(client, target="kam-unix"))[0] == 403
    metrics = await (await client.get("/metrics")).text()
    assert value(metrics, "kamailio_exporter_config_last_reload_successful") == 1.0
    assert (await client.get("/-/reload")).status == 405


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


async def test_self_metrics_carry_no_target_labels(service: TestClient[Any, Any]) -> None:
    await get_probe(service, target="kam-tcp")
    await get_probe(service, target="dead")
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


async def test_landing_page_history_and_logs(service: TestClient[Any, Any]) -> None:
    await get_probe(service, target="kam-tcp")
    await get_probe(service, target="dead")
    page = await (await service.get("/")).text()
    recent = page.split('<h2 id="probes">Recent probes</h2>')[1]
    assert recent.index(">dead<") < recent.index(">kam-tcp<")  # newest first
    assert '<span class="badge down">FAILURE</span>' in recent
    logs = await service.get("/logs", params={"target": "dead"})
    assert "probe failed at stage connect" in await logs.text()
    logs_up = await (await service.get("/logs", params={"target": "kam-tcp"})).text()
    assert re.search(r"^kamailio_up 1\.0$", logs_up, re.MULTILINE)  # the metrics as returned
    assert re.search(r"s debug +collector stats: \d+ families$", logs_up, re.MULTILINE)
    assert (await service.get("/logs", params={"id": "999999"})).status == 404
    assert (await service.get("/logs")).status == 400
