"""The HTTP surface: routes, parameters, status codes and rendering; the service does the rest."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from .landing import landing_page
from .service import BadRequest, Exporter, ReloadError
from .sources import redact_url

log = logging.getLogger("probe_exporter")

MAX_PARAM_LENGTH = 1024
_PROBE_ID = re.compile(r"[0-9]{1,18}")
GZIP_LEVEL = 1  # ~3x smaller than plain text at a fraction of level 9's CPU cost

EXPORTER_KEY = web.AppKey("exporter", Exporter)


def _single(request: web.Request, name: str, required: bool) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"'{name}' parameter must be given once")
    if not values:
        if required:
            raise BadRequest(f"'{name}' parameter is missing")
        return None
    if len(values[0]) > MAX_PARAM_LENGTH:
        raise BadRequest(f"'{name}' parameter is longer than {MAX_PARAM_LENGTH} characters")
    return values[0]


def _text(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(
        status=status, text=message.rstrip("\n") + "\n", content_type="text/plain", headers=headers
    )


def _body(request: web.Request, payload: bytes, content_type: str) -> web.Response:
    headers = {"Content-Type": content_type}
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        # zlib writes the gzip container itself: a third cheaper than gzip.compress
        payload = zlib.compress(payload, GZIP_LEVEL, wbits=31)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=payload, headers=headers)


STATUS_OF_REFUSAL = {"bad_request": 400, "forbidden": 403, "overload": 503}


async def handle_probe(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    started = time.monotonic()
    try:
        target = _single(request, "target", required=True)
        module = _single(request, "module", required=False)
        debug = _single(request, "debug", required=False) == "true"
    except BadRequest as exc:
        exporter.refuse("bad_request", str(exc), request.query.get("target"))
        return _text(400, str(exc))
    assert target is not None
    answer = await exporter.probe(
        target,
        module,
        request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"),
        debug,
        accept=request.headers.get("Accept"),
        started=started,
    )
    if answer.refused is not None:
        headers = {"Retry-After": "1"} if answer.refused == "overload" else {}
        return _text(STATUS_OF_REFUSAL[answer.refused], answer.message, **headers)
    if debug:
        assert answer.log is not None
        return _text(200, _debug_text(answer.log.lines, answer.payload, answer.settings()))
    return _body(request, answer.payload, answer.content_type)


def _debug_text(log_lines: list[str], exposition: bytes, settings_text: str) -> str:
    return (
        "Logs for the probe:\n" + "\n".join(log_lines) + "\n\n\n\n"
        "Metrics that would have been returned:\n"
        + exposition.decode()
        + "\n\n\nModule configuration:\n"
        + settings_text
    )


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    registry = request.app[EXPORTER_KEY].metrics.registry
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return _body(request, encoder(registry), content_type)


async def handle_healthy(request: web.Request) -> web.StreamResponse:
    return _text(200, "Healthy")


async def handle_ready(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    if exporter.draining:
        return _text(503, "Draining: shutting down")
    return _text(200, "Ready")


async def handle_reload(request: web.Request) -> web.StreamResponse:
    try:
        changed = await request.app[EXPORTER_KEY].reload()
    except ReloadError as exc:
        return _text(500, f"failed to reload config: {exc}")
    return _text(200, "config reloaded" if changed else "config unchanged")


async def handle_sd(request: web.Request) -> web.StreamResponse:
    config = request.app[EXPORTER_KEY].config
    groups = []
    for target in config.targets.values():
        labels = {
            "__meta_kamailio_target_name": target.name,
            "__meta_kamailio_target_address": str(target.address),
        }
        if target.module:
            # The meta label for relabeling rules (as in deploy/prometheus/), the parameter so
            # that a job without such a rule still probes with the target's module.
            labels["__meta_kamailio_target_module"] = target.module
            labels["__param_module"] = target.module
        labels.update(target.labels)
        groups.append({"targets": [target.name], "labels": labels})
    return web.json_response(groups)


async def handle_logs(request: web.Request) -> web.StreamResponse:
    history = request.app[EXPORTER_KEY].history
    try:
        probe_id = _single(request, "id", required=False)
        target = _single(request, "target", required=False)
        module = _single(request, "module", required=False)
    except BadRequest as exc:
        return _text(400, str(exc))
    if (probe_id is None) == (target is None):
        return _text(400, "give either 'id' or 'target' (with an optional 'module')")
    if probe_id is not None:
        # Only ASCII digits: str.isdigit() and int() also take "²", "٣", " 7" and "1_0".
        if _PROBE_ID.fullmatch(probe_id) is None:
            return _text(400, "'id' must be a probe number")
        record = history.get(int(probe_id))
    else:
        assert target is not None
        record = history.latest_for(target, module)
    if record is None:
        return _text(
            404,
            f"probe not found: the last {history.limit} probes are kept, "
            "and as many older failures",
        )
    return _text(200, _debug_text(record.log.lines, record.exposition, record.settings()))


async def handle_config(request: web.Request) -> web.StreamResponse:
    config = request.app[EXPORTER_KEY].config
    view: dict[str, Any] = {
        "sha256": config.sha256,
        "pool": dataclasses.asdict(config.pool),
        "modules": {
            name: {"collectors": list(m.collectors), "timeout": m.timeout}
            for name, m in config.modules.items()
        },
        "targets": {
            name: {
                "address": str(t.address),
                "module": t.module,
                "timeout": t.timeout,
                "labels": dict(t.labels),
                "xhttp_prom_url": t.xhttp_prom_url and redact_url(t.xhttp_prom_url),
                "rtpengine_metrics_url": t.rtpengine_metrics_url
                and redact_url(t.rtpengine_metrics_url),
            }
            for name, t in config.targets.items()
        },
        "allow": [str(rule) for rule in config.allow],
    }
    return _text(200, json.dumps(view, indent=2, default=str))


# The status page shows text from requests: should escaping ever fail, no script runs and
# nothing loads.
LANDING_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


async def handle_landing(request: web.Request) -> web.StreamResponse:
    return web.Response(
        text=landing_page(request.app[EXPORTER_KEY]),
        content_type="text/html",
        headers={"Content-Security-Policy": LANDING_POLICY, "X-Content-Type-Options": "nosniff"},
    )


def create_app(
    exporter: Exporter, middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...] = ()
) -> web.Application:
    """The routes over a started exporter (Exporter.start); the app's cleanup stops it."""
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024)
    app[EXPORTER_KEY] = exporter
    app.router.add_get("/", handle_landing)
    app.router.add_get("/probe", handle_probe)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/sd", handle_sd)
    app.router.add_get("/logs", handle_logs)
    app.router.add_get("/config", handle_config)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_post("/-/reload", handle_reload)

    async def stop(app: web.Application) -> None:
        with contextlib.suppress(Exception):
            await exporter.stop()

    app.on_cleanup.append(stop)
    return app
