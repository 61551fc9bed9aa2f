"""The running service behind the HTTP routes: config and reloads, the pool, probing, history."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from . import __version__
from .config import Config, ConfigError, ResolvedTarget, load_config
from .history import ProbeHistory
from .pool import ConnectionPool
from .probe import Prober, ProbeRequest, ProbeResult, expand_collectors
from .selfmetrics import SelfMetrics

log = logging.getLogger("probe_exporter")

MERGED_SOURCE_CONNECTIONS = 256  # open HTTP connections to merged sources, all targets together


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
    """A request the scraper got wrong (HTTP 400)."""


def redact_url(url: str) -> str:
    """Shows a URL without its credentials: user name and password, and query values (tokens)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "<secret>@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=<secret>"
        for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


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

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.http = aiohttp.ClientSession(
            headers={"User-Agent": f"kamailio-probe-exporter/{__version__}"},
            connector=aiohttp.TCPConnector(limit=MERGED_SOURCE_CONNECTIONS, ttl_dns_cache=30),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        try:
            await self.reload()
        except BaseException:  # no stop() follows a failed start
            await self.http.close()
            raise

    async def stop(self) -> None:
        try:
            if self.pool is not None:
                await self.pool.close()
        finally:
            if self.http is not None:
                await self.http.close()

    async def reload(self) -> bool:
        """Loads the config file; an invalid file keeps the current config and raises."""
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.settings.config_file)
            except (ConfigError, OSError) as exc:
                self.metrics.reload_success.set(0)
                log.error(
                    "config load failed, keeping the previous one: %s",
                    exc,
                    extra={"config": self.settings.config_file},
                )
                raise
            changed = self.config is None or config.sha256 != self.config.sha256
            self._apply(config)
            self.metrics.reload_success.set(1)
            self.metrics.reload_timestamp.set(time.time())
            if changed:
                log.info(
                    "config loaded: %d targets, %d allow rules, modules %s",
                    len(config.targets),
                    len(config.allow),
                    ", ".join(config.modules),
                    extra={"config": self.settings.config_file},
                )
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
                per_target=int(pool_settings["per_target"]),
                stats=old.stats if old else None,
            )
            self.pool.start()
            self.prober = Prober(self.pool, self.http)
            self._pool_settings = pool_settings
            if old is not None:
                # Probes already running finish on the old pool, whose connections close
                # as their last probe releases them: Kamailio counts them against its 128.
                old.retire()
        self.config = config
        self.metrics.set_modules(config.modules)

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

    async def run_probe(
        self, resolved: ResolvedTarget, timeout: float, started: float
    ) -> ProbeResult:
        assert self.prober is not None
        target = resolved.target
        sources = {
            name: url
            for name, url in (
                ("xhttp_prom", target.xhttp_prom_url),
                ("rtpengine_metrics", target.rtpengine_metrics_url),
            )
            if url
        }
        request = ProbeRequest(
            target=target.name,
            module=resolved.module.name,
            address=target.address,
            collectors=expand_collectors(resolved.module.collectors),
            options=resolved.module.options,
            timeout=timeout,
            http_sources=sources,
        )
        return await self.prober.probe(request, started=started)


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
