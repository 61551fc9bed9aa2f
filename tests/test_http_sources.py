"""Merged HTTP sources (xhttp_prom, rtpengine's /metrics) read whole, bounded, never redirected."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from helpers import ClientFactory, value
from kamailio_harness import KamailioInstance, free_ports

from probe_exporter.service import Exporter, Settings
from probe_exporter.sources import HTTP_BODY_LIMIT
from probe_exporter.web import create_app

LINES = 5000  # about 150 KB: many chunks on the wire


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_type = "text/plain"
    await response.prepare(request)  # chunked, written in pieces
    for start in range(0, LINES, 500):
        await response.write(
            "".join(f'source_metric{{n="{n}"}} {n}\n' for n in range(start, start + 500)).encode()
        )
    await response.write_eof()
    return response


async def redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/big")


async def huge(request: web.Request) -> web.StreamResponse:
    return web.Response(text="x 1\n" * (HTTP_BODY_LIMIT // 4 + 1))


@pytest.fixture
async def source() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/huge", huge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def client(
    kamailio: KamailioInstance, source: TestServer, tmp_path: Path, aiohttp_client: ClientFactory
) -> TestClient[Any, Any]:
    base = f"http://127.0.0.1:{source.port}"
    config = tmp_path / "targets.toml"
    config.write_text(
        "".join(
            f"""
[[targets]]
name = "{name}"
address = "{kamailio.unix}"
xhttp_prom_url = "{base}/{name}"
"""
            for name in ("big", "redirect", "huge")
        )
    )
    exporter = await Exporter.start(Settings(config_file=str(config)))
    return await aiohttp_client(create_app(exporter))


async def test_a_body_of_many_chunks_is_read_whole(client: TestClient[Any, Any]) -> None:
    text = await (await client.get("/probe", params={"target": "big"})).text()
    assert value(text, "kamailio_exporter_collector_success", collector="xhttp_prom") == 1.0
    assert value(text, "source_metric", n=str(LINES - 1)) == LINES - 1
    assert sum(line.startswith("source_metric{") for line in text.splitlines()) == LINES


@pytest.mark.parametrize("name", ["redirect", "huge"])
async def test_redirects_and_oversized_bodies_fail_the_source_only(
    client: TestClient[Any, Any], name: str
) -> None:
    response = await client.get("/probe", params={"target": name, "debug": "true"})
    text = await response.text()
    assert "kamailio_up 1" in text
    assert 'kamailio_exporter_collector_success{collector="xhttp_prom"} 0' in text
    assert "source_metric" not in text
    assert ("HTTP 302" if name == "redirect" else "body larger than") in text


# -- a hostile source: malformed HTTP, whose parser errors would quote the URL and its token ---

TOKEN = "s3cr3t-t0ken"
HOSTILE = {
    # Each echoes the request line, token included, where the HTTP parser will complain.
    "status": "HTTP/1.1 2OO {request}\r\nContent-Length: 4\r\n\r\nx 1\n",
    "length": "HTTP/1.1 200 OK\r\nContent-Length: {request}\r\n\r\nx 1\n",
    "chunk": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{request}\r\nx 1\n\r\n0\r\n\r\n",
    "short": "HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n# {request}\n",
}


@pytest.fixture
async def hostile_source() -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = (await reader.readline()).decode().strip()
        kind = request.split()[1].split("?")[0].strip("/")
        async with asyncio.timeout(5):
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
        writer.write(HOSTILE[kind].format(request=request).encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_malformed_answers_never_show_the_token(
    hostile_source: int,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    (closed,) = free_ports("tcp")
    config = tmp_path / "targets.toml"
    url = f"http://127.0.0.1:{hostile_source}/{kind}?token={TOKEN}"
    config.write_text(
        f'[[targets]]\nname = "t"\naddress = "tcp:127.0.0.1:{closed}"\nxhttp_prom_url = "{url}"\n'
    )
    exporter = await Exporter.start(Settings(config_file=str(config)))
    client = await aiohttp_client(create_app(exporter))
    with caplog.at_level(logging.DEBUG):
        debug = await (await client.get("/probe", params={"target": "t", "debug": "true"})).text()
        logs = await (await client.get("/logs", params={"target": "t"})).text()
    problem = {
        "status": "malformed HTTP response",
        "length": "malformed HTTP response",
        "chunk": "malformed HTTP response",
        "short": "malformed or incomplete body",
    }[kind]
    redacted = f"http://127.0.0.1:{hostile_source}/{kind}?token=<secret>"
    assert f"s warning xhttp_prom: {problem} from {redacted}\n" in debug
    assert 'kamailio_exporter_collector_success{collector="xhttp_prom"} 0' in debug
    assert logs == debug
    assert f"xhttp_prom: {problem} from {redacted}" in caplog.text
    for text in (debug, logs, caplog.text):
        assert TOKEN not in text
