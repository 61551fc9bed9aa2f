"""The running service behind the HTTP routes: config and reloads, the pool, probing, history.

`Exporter.probe` runs a whole /probe request, as blackbox_exporter's probe handler does: the
target's resolution (inside the probe, under its deadline and its log), the probe, the self
metrics, rendering and the history. The HTTP layer only turns its answer into a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

from . import __version__
from .config import (
    DEFAULT_MODULE,
    Config,
    ConfigError,
    ResolvedTarget,
    TargetRejected,
    TargetResolveError,
    UnknownModule,
    load_config,
    resolve_target,
)
from .errors import ExporterError
from .exposition import negotiate, render_text
from .failurelog import FailureLog, RefusalLog
from .history import ProbeHistory
from .limits import INLINE_SAMPLES, offload
from .metrics import sample_count
from .pool import ConnectionPool, PoolStats
from .probe import (
    Prober,
    ProbeRequest,
    ProbeTarget,
    ResolveError,
    TargetRefused,
    expand_collectors,
)
from .probelog import ProbeLogCapture
from .selfmetrics import SelfMetrics
from .sources import redact_url
from .status import StatusBoard

log = logging.getLogger("probe_exporter")

MERGED_SOURCE_CONNECTIONS = 256  # open HTTP connections to merged sources, all targets together
# What Prometheus sends in X-Prometheus-Scrape-Timeout-Seconds (Go's strconv.FormatFloat).
_SECONDS = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


@dataclass(frozen=True)
class Settings:
    """The command line's choices that the app needs."""

    config_file: str
    timeout_offset: float = 0.5
    max_concurrent: int = 256
    history_limit: int = 100
    history_max_bytes: int = 64 << 20
    default_scrape_timeout: float = 10.0
    pool_overrides: Mapping[str, float | int] = field(default_factory=dict)


class BadRequest(ExporterError):
    """A request the scraper got wrong (HTTP 400)."""


class ReloadError(ExporterError):
    """The config file could not be reloaded (invalid or unreadable); the previous one stays."""


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """What /probe answers: the probe's metrics, or why no probe ran.

    `refused` is None for a probe that ran (failed or not), else why none ran: "bad_request"
    (a bad scrape timeout, an unknown module), "forbidden" (the target is not allowed) or
    "overload" (too many probes in flight); `message` then says why, in one line.
    """

    refused: str | None = None
    message: str = ""
    payload: bytes = b""  # the metrics, rendered for the scraper (text format for debug)
    content_type: str = ""
    log: ProbeLogCapture | None = None
    settings: Callable[[], str] = str


class Exporter:
    """The running service: current config, pool, prober, history and self metrics.

    `Exporter.start` builds one from the settings. A reload replaces the config, and with new
    pool settings the pool and its prober.
    """

    def __init__(
        self,
        settings: Settings,
        config: Config,
        http: aiohttp.ClientSession,
        pool: ConnectionPool,
        prober: Prober,
        history: ProbeHistory,
        metrics: SelfMetrics,
    ) -> None:
        self.settings = settings
        self.config = config
        self.http = http
        self.pool = pool
        self.prober = prober
        self.history = history
        self.metrics = metrics
        self.status = StatusBoard()
        self.started_at = time.time()
        self._pool_settings = _pool_settings(config, settings)
        self.in_flight = 0
        self.draining = False
        self._reloading: asyncio.Task[bool] | None = None
        self._next_reload: asyncio.Task[bool] | None = None
        self.failures = FailureLog()
        self.refusals = RefusalLog()

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def start(cls, settings: Settings) -> Exporter:
        """Loads the config file and builds the service; raises ConfigError or OSError."""
        config = await _load_config(settings.config_file)
        http = aiohttp.ClientSession(
            headers={"User-Agent": f"kamailio-probe-exporter/{__version__}"},
            connector=aiohttp.TCPConnector(limit=MERGED_SOURCE_CONNECTIONS, ttl_dns_cache=30),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        pool = _new_pool(_pool_settings(config, settings), None)
        exporter: Exporter | None = None
        # The pool a reload may replace: the metrics ask the exporter for the current one.
        metrics = SelfMetrics(config.modules, lambda: exporter.pool if exporter else None)
        exporter = cls(
            settings,
            config,
            http,
            pool,
            Prober(pool, http),
            ProbeHistory(settings.history_limit, settings.history_max_bytes),
            metrics,
        )
        metrics.reload_success.set(1)
        metrics.reload_timestamp.set(time.time())
        _log_loaded(config, settings.config_file)
        return exporter

    async def stop(self) -> None:
        try:
            await self.pool.close()
        finally:
            await self.http.close()

    async def reload(self) -> bool:
        """Loads the config file; an invalid file keeps the current config and raises
        ReloadError.

        One reload runs at a time, whatever the callers do: a caller that goes away does not
        stop it (the parse goes on in its thread anyway), and callers that come while one runs
        share one more reload after it, which reads the file as it is then. So a storm of
        requests costs two parses at most, one after the other."""
        running = self._reloading
        if running is None or running.done():
            task = self._reloading = _task(self._reload_once())
        elif self._next_reload is not None:
            task = self._next_reload
        else:
            task = self._next_reload = _task(self._reload_after(running))
        return await asyncio.shield(task)

    async def _reload_after(self, running: asyncio.Task[bool]) -> bool:
        await asyncio.wait([running])
        self._reloading, self._next_reload = self._next_reload, None
        return await self._reload_once()

    async def _reload_once(self) -> bool:
        try:
            config = await _load_config(self.settings.config_file)
        except (ConfigError, OSError) as exc:
            self.metrics.reload_success.set(0)
            log.error(
                "config load failed, keeping the previous one: %s",
                exc,
                extra={"config": self.settings.config_file},
            )
            raise ReloadError(str(exc)) from exc
        changed = config.sha256 != self.config.sha256
        self._apply(config)
        self.metrics.reload_success.set(1)
        self.metrics.reload_timestamp.set(time.time())
        if changed:
            _log_loaded(config, self.settings.config_file)
        return changed

    def _apply(self, config: Config) -> None:
        pool_settings = _pool_settings(config, self.settings)
        if pool_settings != self._pool_settings:
            old = self.pool
            self.pool = _new_pool(pool_settings, old.stats)
            self.prober = Prober(self.pool, self.http)
            self._pool_settings = pool_settings
            # Probes already running finish on the old pool, whose connections close
            # as their last probe releases them: Kamailio counts them against its 128.
            old.retire()
        self.config = config
        self.metrics.set_modules(config.modules)
        self.status.keep(config.targets, config.modules)

    # -- probing ---------------------------------------------------------------------------

    async def probe(
        self,
        target: str,
        module: str | None,
        scrape_timeout: str | None,
        debug: bool,
        *,
        accept: str | None = None,
        started: float | None = None,
    ) -> ProbeAnswer:
        """Runs `/probe?target=...&module=...`: `scrape_timeout` is the scraper's timeout
        header, `accept` its Accept header (debug output is always text), `started` when the
        request came (time.monotonic()). Counts, renders and records the probe."""
        started = time.monotonic() if started is None else started
        config = self.config
        if "%" in target and target not in config.targets:
            # Some scrapers encode the target twice (`%253A`); decode once more, then the allow
            # rules judge the decoded value like any other.
            target = urllib.parse.unquote(target)
        if self.in_flight >= self.settings.max_concurrent:
            return self.refuse(
                "overload", f"more than {self.settings.max_concurrent} probes in flight", target
            )
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            # The header is checked first: a bad one is the scraper's error, whatever the target.
            budget, _ = self.probe_timeout(math.inf, scrape_timeout)
            resolve = functools.partial(self._resolve, config, target, module, scrape_timeout)
            result = await self.prober.probe(
                ProbeRequest(target, module or DEFAULT_MODULE, budget, resolve), started=started
            )
        except BadRequest as exc:
            return self.refuse("bad_request", str(exc), target)
        except TargetRefused as exc:
            return self.refuse(exc.reason, str(exc), target)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

        self.metrics.observe_probe(result.module, result.success, result.duration)
        self.failures.forward(result)
        renderer, content_type = (render_text, "") if debug else negotiate(accept)
        if sample_count(result.families) > INLINE_SAMPLES:
            payload = await offload(renderer, result.families)
        else:
            payload = renderer(result.families)
        # The history keeps the rendered body, not the families: one object instead of a probe's
        # thousands, freed now while they are still in the CPU's caches.
        ended = time.time()
        record = self.history.add(
            result.target,
            result.module,
            result.success,
            result.stage,
            result.duration,
            result.log,
            payload,
            result.settings,
            result.reason,
            ended,
        )
        self.status.probe_ended(
            result.target,
            result.module,
            listed=result.target in config.targets,
            success=result.success,
            stage=result.stage,
            reason=result.reason,
            duration=result.duration,
            probe_id=record.id if record else None,
            at=ended,
        )
        return ProbeAnswer(None, "", payload, content_type, result.log, result.settings)

    def refuse(self, reason: str, message: str, target: str | None) -> ProbeAnswer:
        """Counts a /probe request refused for `reason` (see ProbeAnswer), for the metrics and
        the status page; `target` is the parameter as sent, if any."""
        self.metrics.rejected.labels(reason).inc()
        self.status.refused(reason, target, message, time.time())
        return ProbeAnswer(reason, message)

    async def _resolve(
        self,
        config: Config,
        target: str,
        module: str | None,
        scrape_timeout: str | None,
        resolve_timeout: float,
    ) -> ProbeTarget:
        """The probe's first stage: the allowed address and effective settings of `target`."""
        try:
            resolved = await resolve_target(config, target, module, resolve_timeout=resolve_timeout)
        except TargetResolveError as exc:
            raise ResolveError(str(exc)) from None
        except TargetRejected as exc:
            # The client gets the message; only the log tells what a name resolved to.
            self.refusals.report(target, exc.detail)
            raise TargetRefused("forbidden", str(exc)) from None
        except UnknownModule as exc:
            raise TargetRefused("bad_request", str(exc)) from None
        timeout, source = self.probe_timeout(resolved.timeout, scrape_timeout)
        found = resolved.target
        sources = (
            ("xhttp_prom", found.xhttp_prom_url),
            ("rtpengine_metrics", found.rtpengine_metrics_url),
        )
        return ProbeTarget(
            name=found.name,
            module=resolved.module.name,
            address=found.address,
            collectors=expand_collectors(resolved.module.collectors),
            options=resolved.module.options,
            timeout=timeout,
            settings=functools.partial(settings_text, resolved, timeout, source),
            http_sources={name: url for name, url in sources if url},
            limits=resolved.module.limits,
            listed=resolved.rule is None,
        )

    def probe_timeout(self, configured: float, header: str | None) -> tuple[float, str]:
        """The smallest of the configured timeout and the scrape timeout less the offset,
        with where it came from."""
        if header is None:
            scrape = self.settings.default_scrape_timeout
        else:
            # ASCII decimals only: float() also takes " 5", "1_0", "٣" and "nan".
            if _SECONDS.fullmatch(header) is None:
                raise BadRequest(
                    f"X-Prometheus-Scrape-Timeout-Seconds is not a number: {header[:64]!r}"
                )
            scrape = float(header)
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


def _task(coroutine: Coroutine[Any, Any, bool]) -> asyncio.Task[bool]:
    """A reload task; its outcome is retrieved even when every caller went away."""
    task = asyncio.get_running_loop().create_task(coroutine)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


_CONFIG_LOAD_THREAD = "config-load"


async def _load_config(path: str) -> Config:
    """load_config in a thread of its own, which the exporter's exit does not wait for: a
    parse of a large file (or a read that hangs on a network file system) must not hold up
    shutdown, as a thread of asyncio's default executor would (asyncio.run waits for them)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Config] = loop.create_future()

    def settle(config: Config | None, error: BaseException | None) -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(Config, config))

    def run() -> None:
        try:
            outcome: tuple[Config | None, BaseException | None] = (load_config(path), None)
        except BaseException as exc:  # handed to the caller
            outcome = (None, exc)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=_CONFIG_LOAD_THREAD, daemon=True).start()
    return await future


def config_loading() -> bool:
    """Whether a config read or parse is still running in its thread."""
    return any(t.name == _CONFIG_LOAD_THREAD and t.is_alive() for t in threading.enumerate())


def pool_descriptors(config: Config, settings: Settings) -> int:
    """Sockets the BINRPC pool keeps open at most under `config` and the command line's
    overrides: listed targets' and ad-hoc addresses' maximums together."""
    pool = _pool_settings(config, settings)
    return int(pool["max_connections"]) + int(pool["max_adhoc_connections"])


def _pool_settings(config: Config, settings: Settings) -> dict[str, float | int]:
    return {
        "idle_ttl": config.pool.idle_ttl,
        "max_connections": config.pool.max_connections,
        "per_target": config.pool.per_target,
        "max_adhoc_connections": config.pool.max_adhoc_connections,
        **settings.pool_overrides,
    }


def _new_pool(pool_settings: Mapping[str, float | int], stats: PoolStats | None) -> ConnectionPool:
    """A started pool; `stats` are those of the pool it replaces, counted on."""
    pool = ConnectionPool(
        idle_ttl=float(pool_settings["idle_ttl"]),
        max_connections=int(pool_settings["max_connections"]),
        per_target=int(pool_settings["per_target"]),
        max_adhoc_connections=int(pool_settings["max_adhoc_connections"]),
        stats=stats,
    )
    pool.start()
    return pool


def _log_loaded(config: Config, path: str) -> None:
    log.info(
        "config loaded: %d targets, %d allow rules, modules %s",
        len(config.targets),
        len(config.allow),
        ", ".join(config.modules),
        extra={"config": path},
    )


def settings_text(resolved: ResolvedTarget, timeout: float, source: str) -> str:
    """The effective settings of a probe, for its debug output (secrets redacted)."""
    target, module = resolved.target, resolved.module
    lines = [
        f"target: {target.name}",
        f"address: {target.address}",
        f"module: {module.name}",
        f"collectors: {', '.join(module.collectors)}",
        f"timeout: {timeout:.3f}s ({source})",
    ]
    if target.xhttp_prom_url:
        lines.append(f"xhttp_prom_url: {redact_url(target.xhttp_prom_url)}")
    if target.rtpengine_metrics_url:
        lines.append(f"rtpengine_metrics_url: {redact_url(target.rtpengine_metrics_url)}")
    return "\n".join(lines) + "\n"
