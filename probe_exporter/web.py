"""The HTTP surface: routes, parameters, status codes and rendering; the service does the rest."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import html
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .config import (
    Config,
    ConfigError,
    TargetRejected,
    TargetResolveError,
    UnknownModule,
    resolve_target,
)
from .exposition import negotiate, render_text
from .probe import STAGES, ProbeResult, failed_before_rpc
from .service import BadRequest, Exporter, redact_url, settings_text

log = logging.getLogger("probe_exporter")

MAX_PARAM_LENGTH = 1024
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
        payload = gzip.compress(payload, compresslevel=GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=payload, headers=headers)


async def handle_probe(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    started = time.monotonic()
    metrics = exporter.metrics
    config = exporter.config
    try:
        target = _single(request, "target", required=True)
        module = _single(request, "module", required=False)
        debug = _single(request, "debug", required=False) == "true"
        assert target is not None
        assert config is not None
        if "%" in target and target not in config.targets:
            # Some scrapers encode the target twice (`%253A`); decode once more, then the allow
            # rules judge the decoded value like any other.
            target = urllib.parse.unquote(target)
    except BadRequest as exc:
        metrics.rejected.labels("bad_request").inc()
        return _text(400, str(exc))
    if exporter.in_flight >= exporter.settings.max_concurrent:
        metrics.rejected.labels("overload").inc()
        return _text(
            503,
            f"more than {exporter.settings.max_concurrent} probes in flight",
            **{"Retry-After": "1"},
        )

    exporter.in_flight += 1
    metrics.in_flight.inc()
    try:
        return await _probe(request, exporter, config, target, module, debug, started)
    finally:
        exporter.in_flight -= 1
        metrics.in_flight.dec()


async def _probe(
    request: web.Request,
    exporter: Exporter,
    config: Config,
    target: str,
    module: str | None,
    debug: bool,
    started: float,
) -> web.StreamResponse:
    metrics = exporter.metrics
    header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    try:
        # The header is checked first: a bad one is the scraper's error, whatever the target.
        timeout, _ = exporter.probe_timeout(math.inf, header)
        resolved = await resolve_target(config, target, module, resolve_timeout=timeout)
        timeout, source = exporter.probe_timeout(resolved.timeout, header)
    except TargetRejected as exc:
        metrics.rejected.labels("forbidden").inc()
        log.warning("target rejected: %s", exc, extra={"target": target[:256]})
        return _text(403, str(exc))
    except (UnknownModule, BadRequest) as exc:
        metrics.rejected.labels("bad_request").inc()
        return _text(400, str(exc))
    except TargetResolveError as exc:
        reason = str(exc)
        module_name = module or "default"
        log.error(
            "probe failed at stage resolve: %s",
            reason,
            extra={"target": target, "probe_module": module_name},
        )
        result = failed_before_rpc(
            target, module_name, "resolve", reason, time.monotonic() - started, timeout
        )
        return _respond(
            request,
            exporter,
            target,
            module_name,
            result,
            debug,
            lambda: f"target: {target}\nmodule: {module_name}\n",
        )

    result = await exporter.run_probe(resolved, timeout, started)
    return _respond(
        request,
        exporter,
        resolved.target.name,
        resolved.module.name,
        result,
        debug,
        functools.partial(settings_text, resolved, timeout, source),
    )


def _respond(
    request: web.Request,
    exporter: Exporter,
    target: str,
    module: str,
    result: ProbeResult,
    debug: bool,
    settings: Callable[[], str],
) -> web.StreamResponse:
    exporter.metrics.observe_probe(module, result.success, result.duration)
    renderer, content_type = (
        (render_text, "") if debug else negotiate(request.headers.get("Accept"))
    )
    payload = renderer(result.families)
    # The history keeps the rendered body, not the families: one object instead of a probe's
    # thousands, freed now while they are still in the CPU's caches.
    exporter.history.add(
        target, module, result.success, result.stage, result.duration, result.log, payload, settings
    )
    if debug:
        return _text(200, _debug_text(result.log.lines, payload, settings()))
    return _body(request, payload, content_type)


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
    if exporter.config is None:
        return _text(503, "No valid configuration loaded yet")
    return _text(200, "Ready")


async def handle_reload(request: web.Request) -> web.StreamResponse:
    try:
        changed = await request.app[EXPORTER_KEY].reload()
    except (ConfigError, OSError) as exc:
        return _text(500, f"failed to reload config: {exc}")
    return _text(200, "config reloaded" if changed else "config unchanged")


async def handle_sd(request: web.Request) -> web.StreamResponse:
    config = request.app[EXPORTER_KEY].config
    assert config is not None
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
        if not probe_id.isdigit():
            return _text(400, "'id' must be a number")
        record = history.get(int(probe_id))
    else:
        assert target is not None
        record = history.latest_for(target, module)
    if record is None:
        return _text(404, "probe not found")
    return _text(200, _debug_text(record.log.lines, record.exposition, record.settings()))


async def handle_config(request: web.Request) -> web.StreamResponse:
    config = request.app[EXPORTER_KEY].config
    assert config is not None
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


LANDING_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Kamailio Probe Exporter</title>
<style>
body {{ font-family: sans-serif }}
table {{ border-collapse: collapse }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left }}
</style>
</head><body>
<h1>Kamailio Probe Exporter</h1>
<p>Version {version}. Probe a Kamailio with
<code>/probe?target=NAME_OR_ADDRESS[&amp;module=M][&amp;debug=true]</code>;
failure stages: {stages}.</p>
<ul>
<li><a href="metrics">Exporter metrics</a></li>
<li><a href="sd">Service discovery (http_sd)</a></li>
<li><a href="config">Configuration</a></li>
<li><a href="-/healthy">Health</a>, <a href="-/ready">Readiness</a></li>
</ul>
<h2>Modules</h2><p>{modules}</p>
<h2>Targets</h2>
<table><tr><th>Name</th><th>Address</th><th>Module</th><th></th></tr>
{targets}</table>
<h2>Recent probes</h2>
<table><tr><th>Module</th><th>Target</th><th>Result</th><th>Duration</th><th>Debug</th></tr>
{probes}</table>
</body></html>
"""


async def handle_landing(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    config = exporter.config
    e = html.escape
    probes = []
    for record in exporter.history:
        result = (
            "Success" if record.success else f"<strong>Failure</strong> ({e(record.stage or '')})"
        )
        probes.append(
            f"<tr><td>{e(record.module)}</td><td>{e(record.target)}</td><td>{result}</td>"
            f"<td>{record.duration * 1000:.1f} ms</td>"
            f'<td><a href="logs?id={record.id}">Debug</a></td></tr>'
        )
    targets = []
    if config is not None:
        for t in config.targets.values():
            quoted = urllib.parse.quote(t.name, safe="")
            targets.append(
                f"<tr><td>{e(t.name)}</td><td>{e(str(t.address))}</td>"
                f"<td>{e(t.module or 'default')}</td>"
                f'<td><a href="probe?target={quoted}">Probe</a> '
                f'<a href="probe?target={quoted}&amp;debug=true">Debug</a></td></tr>'
            )
    page = LANDING_PAGE.format(
        version=e(__version__),
        stages=e(", ".join(STAGES)),
        modules=", ".join(e(m) for m in config.modules) if config else "",
        targets="\n".join(targets),
        probes="\n".join(probes),
    )
    return web.Response(text=page, content_type="text/html")


def create_app(
    exporter: Exporter, middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...] = ()
) -> web.Application:
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

    async def lifecycle(app: web.Application) -> Any:
        await exporter.start()
        yield
        with contextlib.suppress(Exception):
            await exporter.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
