"""The HTTP surface: routes only. Probing, config, history and self metrics live beside it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import html
import json
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .config import (
    Config,
    ConfigError,
    ResolvedTarget,
    TargetRejected,
    TargetResolveError,
    UnknownModule,
    load_config,
    resolve_target,
)
from .exposition import negotiate, render_text
from .history import ProbeHistory
from .metrics import MetricFamily
from .pool import ConnectionPool
from .probe import (
    STAGES,
    Prober,
    ProbeRequest,
    ProbeResult,
    expand_collectors,
    failed_before_rpc,
)
from .selfmetrics import SelfMetrics

log = logging.getLogger("probe_exporter")

MAX_PARAM_LENGTH = 1024
GZIP_LEVEL = 1  # ~3x smaller than plain text at a fraction of level 9's CPU cost
HEALTH_PATHS = frozenset({"/-/healthy", "/-/ready"})


@dataclass(frozen=True)
class Settings:
    """The command line's choices that the app needs."""

    config_file: str
    timeout_offset: float = 0.5
    max_concurrent: int = 256
    history_limit: int = 100
    default_scrape_timeout: float = 10.0
    pool_overrides: Mapping[str, float | int] = field(default_factory=dict)


class BadRequest(Exception):
    pass


def _redact_url(url: str) -> str:
    """Shows a URL without its password (and without a user name, which may be a token)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"<secret>@{host}"))


class Exporter:
    """The running service: current config, pool, prober, history and self metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config: Config | None = None
        self.pool: ConnectionPool | None = None
        self._pool_settings: dict[str, float | int] = {}
        self.prober: Prober | None = None
        self.http: aiohttp.ClientSession | None = None
        self.history = ProbeHistory(settings.history_limit)
        self.metrics = SelfMetrics((), lambda: self.pool)
        self.in_flight = 0
        self.draining = False
        self._reload_lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            headers={"User-Agent": f"kamailio-probe-exporter/{__version__}"},
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=30))
        await self.reload()

    async def stop(self) -> None:
        for task in list(self._retired):
            task.cancel()
        await asyncio.gather(*self._retired, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
        if self.http is not None:
            await self.http.close()

    async def reload(self) -> bool:
        """Loads the config file; an invalid file keeps the current config and raises."""
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.settings.config_file)
            except (ConfigError, OSError) as exc:
                self.metrics.reload_success.set(0)
                log.error("config load failed, keeping the previous one: %s", exc,
                          extra={"config": self.settings.config_file})
                raise
            changed = self.config is None or config.sha256 != self.config.sha256
            self._apply(config)
            self.metrics.reload_success.set(1)
            self.metrics.reload_timestamp.set(time.time())
            if changed:
                log.info("config loaded: %d targets, %d allow rules, modules %s",
                         len(config.targets), len(config.allow), ", ".join(config.modules),
                         extra={"config": self.settings.config_file})
            return changed

    def _apply(self, config: Config) -> None:
        assert self.http is not None
        pool_settings: dict[str, float | int] = {
            "idle_ttl": config.pool.idle_ttl,
            "max_connections": config.pool.max_connections,
            "per_target": config.pool.per_target,
            **self.settings.pool_overrides,
        }
        if self.pool is None or pool_settings != self._pool_settings:
            old = self.pool
            self.pool = ConnectionPool(
                idle_ttl=float(pool_settings["idle_ttl"]),
                max_connections=int(pool_settings["max_connections"]),
                per_target=int(pool_settings["per_target"]))
            self.pool.start()
            self.prober = Prober(self.pool, self.http)
            self._pool_settings = pool_settings
            if old is not None:
                self._retire(old, config)
        self.config = config
        self.metrics.set_modules(config.modules)

    def _retire(self, pool: ConnectionPool, config: Config) -> None:
        # Probes already running finish on the old pool; it closes once they must be done.
        grace = max((m.timeout for m in config.modules.values()), default=10.0) + 1.0

        async def close_later() -> None:
            await asyncio.sleep(grace)
            await pool.close()

        task = asyncio.create_task(close_later())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    # -- probing ---------------------------------------------------------------------------

    def probe_timeout(self, configured: float, header: str | None) -> tuple[float, str]:
        """The smallest of the configured timeout and the scrape timeout less the offset,
        with where it came from."""
        if header is None:
            scrape = self.settings.default_scrape_timeout
        else:
            try:
                scrape = float(header)
            except ValueError:
                raise BadRequest(
                    f"X-Prometheus-Scrape-Timeout-Seconds is not a number: {header[:64]!r}"
                ) from None
            if not math.isfinite(scrape) or scrape <= 0:
                raise BadRequest("X-Prometheus-Scrape-Timeout-Seconds must be positive")
        budget = scrape - self.settings.timeout_offset
        if budget <= 0:  # an offset as large as the scrape timeout: keep most of the scrape
            budget = scrape * 0.9
        if configured <= budget:
            return configured, "configured timeout"
        if header is None:
            return budget, "default scrape timeout less the offset (no scrape timeout header)"
        return budget, "scrape timeout header less the offset"

    async def run_probe(self, resolved: ResolvedTarget, timeout: float,
                        started: float) -> ProbeResult:
        assert self.prober is not None
        target = resolved.target
        sources = {name: url for name, url in (("xhttp_prom", target.xhttp_prom_url),
                                               ("rtpengine_metrics", target.rtpengine_metrics_url))
                   if url}
        request = ProbeRequest(
            target=target.name, module=resolved.module.name, address=target.address,
            collectors=expand_collectors(resolved.module.collectors),
            options=resolved.module.options, timeout=timeout, http_sources=sources)
        return await self.prober.probe(request, started=started)

    def settings_text(self, resolved: ResolvedTarget, timeout: float, source: str) -> str:
        target, module = resolved.target, resolved.module
        lines = [
            f"target: {target.name}",
            f"address: {target.address}",
            f"module: {module.name}",
            f"collectors: {', '.join(module.collectors)}",
            f"timeout: {timeout:.3f}s ({source})",
        ]
        if target.xhttp_prom_url:
            lines.append(f"xhttp_prom_url: {_redact_url(target.xhttp_prom_url)}")
        if target.rtpengine_metrics_url:
            lines.append(f"rtpengine_metrics_url: {_redact_url(target.rtpengine_metrics_url)}")
        return "\n".join(lines) + "\n"


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
    return web.Response(status=status, text=message.rstrip("\n") + "\n",
                        content_type="text/plain", headers=headers)


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
        return _text(503, f"more than {exporter.settings.max_concurrent} probes in flight",
                     **{"Retry-After": "1"})

    exporter.in_flight += 1
    metrics.in_flight.inc()
    try:
        return await _probe(request, exporter, config, target, module, debug, started)
    finally:
        exporter.in_flight -= 1
        metrics.in_flight.dec()


async def _probe(request: web.Request, exporter: Exporter, config: Config, target: str,
                 module: str | None, debug: bool, started: float) -> web.StreamResponse:
    metrics = exporter.metrics
    header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    try:
        # The header is checked first: a bad one is the scraper's error, whatever the target.
        timeout, source = exporter.probe_timeout(math.inf, header)
        async with asyncio.timeout(timeout):
            resolved = await resolve_target(config, target, module)
        timeout, source = exporter.probe_timeout(
            resolved.timeout, header)
    except TargetRejected as exc:
        metrics.rejected.labels("forbidden").inc()
        log.warning("target rejected: %s", exc, extra={"target": target[:256]})
        return _text(403, str(exc))
    except (UnknownModule, BadRequest) as exc:
        metrics.rejected.labels("bad_request").inc()
        return _text(400, str(exc))
    except (TargetResolveError, TimeoutError) as exc:
        reason = str(exc) or "name resolution timed out"
        module_name = module or "default"
        log.error("probe failed at stage resolve: %s", reason,
                  extra={"target": target, "probe_module": module_name})
        result = failed_before_rpc("resolve", reason, time.monotonic() - started, timeout)
        return _respond(request, exporter, target, module_name, result, debug,
                        f"target: {target}\nmodule: {module_name}\n")

    result = await exporter.run_probe(resolved, timeout, started)
    return _respond(request, exporter, resolved.target.name, resolved.module.name, result,
                    debug, exporter.settings_text(resolved, timeout, source))


def _respond(request: web.Request, exporter: Exporter, target: str, module: str,
             result: ProbeResult, debug: bool, settings_text: str) -> web.StreamResponse:
    exporter.metrics.observe_probe(module, result.success, result.duration)
    exporter.history.add(target, module, result.success, result.stage, result.duration,
                         result.log_lines, result.families, settings_text)
    if debug:
        return _text(200, _debug_text(result.log_lines, result.families, settings_text))
    renderer, content_type = negotiate(request.headers.get("Accept"))
    return _body(request, renderer(result.families), content_type)


def _debug_text(log_lines: list[str], families: list[MetricFamily], settings_text: str) -> str:
    return ("Logs for the probe:\n" + "\n".join(log_lines) + "\n\n\n\n"
            "Metrics that would have been returned:\n" + render_text(families).decode()
            + "\n\n\nModule configuration:\n" + settings_text)


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
        labels = {"__meta_kamailio_target_name": target.name,
                  "__meta_kamailio_target_address": str(target.address)}
        if target.module:
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
    return _text(200, _debug_text(record.log_lines, record.families, record.settings_text))


async def handle_config(request: web.Request) -> web.StreamResponse:
    config = request.app[EXPORTER_KEY].config
    assert config is not None
    view: dict[str, Any] = {
        "sha256": config.sha256,
        "pool": dataclasses.asdict(config.pool),
        "modules": {name: {"collectors": list(m.collectors), "timeout": m.timeout}
                    for name, m in config.modules.items()},
        "targets": {name: {
            "address": str(t.address), "module": t.module, "timeout": t.timeout,
            "labels": dict(t.labels),
            "xhttp_prom_url": t.xhttp_prom_url and _redact_url(t.xhttp_prom_url),
            "rtpengine_metrics_url": t.rtpengine_metrics_url
            and _redact_url(t.rtpengine_metrics_url),
        } for name, t in config.targets.items()},
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
        result = ("Success" if record.success
                  else f"<strong>Failure</strong> ({e(record.stage or '')})")
        probes.append(
            f"<tr><td>{e(record.module)}</td><td>{e(record.target)}</td><td>{result}</td>"
            f"<td>{record.duration * 1000:.1f} ms</td>"
            f'<td><a href="logs?id={record.id}">Debug</a></td></tr>')
    targets = []
    if config is not None:
        for t in config.targets.values():
            quoted = urllib.parse.quote(t.name, safe="")
            targets.append(
                f"<tr><td>{e(t.name)}</td><td>{e(str(t.address))}</td>"
                f"<td>{e(t.module or 'default')}</td>"
                f'<td><a href="probe?target={quoted}">Probe</a> '
                f'<a href="probe?target={quoted}&amp;debug=true">Debug</a></td></tr>')
    page = LANDING_PAGE.format(
        version=e(__version__), stages=e(", ".join(STAGES)),
        modules=", ".join(e(m) for m in config.modules) if config else "",
        targets="\n".join(targets), probes="\n".join(probes))
    return web.Response(text=page, content_type="text/html")


def create_app(exporter: Exporter,
               middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...] = ()
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
