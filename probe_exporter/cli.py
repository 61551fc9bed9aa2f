"""The command line: Prometheus-style flags (each also an environment variable), then serve."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web

from . import __version__, flags, logs, rpc_command
from .config import Config, ConfigError, load_config
from .config.files import UnreadableFile, read_regular_file
from .flags import DEFAULT_LISTEN, ENV_PREFIX, legacy_env_names, split_listen_address
from .server import (
    AUTO_MAX_CONNECTIONS,
    ConnectionGuard,
    GuardedSite,
    HttpLimits,
    SystemdSocketError,
    mount,
    raise_nofile_limit,
    size_http_connections,
    socket_name,
    systemd_sockets,
)
from .service import (
    MERGED_SOURCE_CONNECTIONS,
    Exporter,
    ReloadError,
    Settings,
    config_loading,
    pool_descriptors,
)
from .web import create_app
from .webconfig import WebConfigError, WebConfigHolder, web_middleware

log = logging.getLogger("probe_exporter")

# The cyclic GC runs once this many more container objects were made than freed. Probes make
# and free thousands (replies, families) by reference counting alone; at Python's default of
# 700 the GC ran every dozen probes, scanning the probes in flight, and took 15-20 % of the
# exporter's CPU under load (bench/). Cycles left over still set it off at 5,000.
GC_THRESHOLD = 5000


def build_parser() -> flags.EnvFlagParser:
    parser = flags.EnvFlagParser(
        prog="kamailio-probe-exporter",
        description="Prometheus exporter for a fleet of Kamailio servers: Prometheus scrapes "
        "/probe?target=..., the exporter asks that Kamailio over BINRPC. "
        f"Every flag can also be set with an environment variable {ENV_PREFIX}<FLAG> "
        "(e.g. KAMAILIO_EXPORTER_CONFIG_FILE). "
        "Subcommand: 'rpc ADDRESS METHOD [PARAMS...]' calls one RPC and prints JSON.",
    )
    flag = parser.flag
    flag("--config.file", dest="config_file", default="targets.toml", help="the targets.toml file")
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        default=False,
        help="validate the config file and exit",
    )
    flag(
        "--config.auto-reload-interval",
        dest="auto_reload_interval",
        type=flags.non_negative_float,
        default=0.0,
        help="seconds between checks of the config file's checksum; a changed file is "
        "reloaded (0 disables)",
    )
    flag(
        "--web.listen-address",
        dest="listen",
        action="append",
        default=[DEFAULT_LISTEN],
        help="address to listen on, repeatable",
    )
    flag(
        "--web.systemd-socket",
        dest="systemd_socket",
        action="store_true",
        default=False,
        help="listen on the sockets systemd passes (socket activation) instead of "
        "--web.listen-address",
    )
    flag(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="exporter-toolkit web config file: TLS and basic auth",
    )
    flag(
        "--web.external-url",
        dest="external_url",
        type=flags.external_url,
        default=None,
        help="the URL under which the exporter is reached (e.g. behind a reverse proxy); "
        "its path is the default route prefix",
    )
    flag(
        "--web.route-prefix",
        dest="route_prefix",
        type=flags.route_prefix,
        default=None,
        help="path prefix of every endpoint (default: the path of --web.external-url, or /)",
    )
    flag(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        type=flags.positive_float,
        default=10.0,
        help="seconds a client has to send a whole request head, from connecting or from the "
        "first byte after an idle keep-alive pause (and for a TLS handshake)",
    )
    flag(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=flags.positive_float,
        default=120.0,
        help="seconds an idle keep-alive connection stays open",
    )
    flag(
        "--web.max-connections",
        dest="web_max_connections",
        type=flags.non_negative_int,
        default=0,
        help="open client connections at most; at the cap, the one waiting longest without a "
        "request in progress is closed (0: sized from the open file limit, at most "
        f"{AUTO_MAX_CONNECTIONS})",
    )
    flag(
        "--log.level",
        dest="log_level",
        default="info",
        type=str.lower,
        choices=sorted(logs.LEVELS),
    )
    flag(
        "--log.format",
        dest="log_format",
        default="logfmt",
        type=str.lower,
        choices=("logfmt", "json"),
    )
    flag(
        "--log.prober",
        dest="log_prober",
        default="info",
        type=str.lower,
        choices=sorted(logs.LEVELS),
        help="level from which probes' log lines go to the log, whatever --log.level",
    )
    flag(
        "--timeout-offset",
        dest="timeout_offset",
        type=flags.non_negative_float,
        default=0.5,
        help="seconds subtracted from Prometheus' scrape timeout to get the probe deadline",
    )
    flag(
        "--probe.default-scrape-timeout",
        dest="default_scrape_timeout",
        type=flags.positive_float,
        default=10.0,
        help="scrape timeout assumed when the scraper sends no "
        "X-Prometheus-Scrape-Timeout-Seconds header",
    )
    flag(
        "--probe.max-concurrent",
        dest="max_concurrent",
        type=flags.positive_int,
        default=256,
        help="probes in flight at most; beyond it /probe answers 503 with Retry-After",
    )
    flag(
        "--history.limit",
        dest="history_limit",
        type=flags.non_negative_int,
        default=100,
        help="recent probes kept for the landing page and /logs (0 disables)",
    )
    flag(
        "--history.max-bytes",
        dest="history_max_bytes",
        type=flags.positive_int,
        default=64 << 20,
        help="rendered metrics kept in the history at most, in bytes; the oldest probes go "
        "first (the newest is always kept)",
    )
    flag(
        "--pool.idle-ttl",
        dest="idle_ttl",
        type=flags.positive_float,
        help="override [pool] idle_ttl",
    )
    flag(
        "--pool.max-connections",
        dest="max_connections",
        type=flags.positive_int,
        help="override [pool] max_connections",
    )
    flag(
        "--pool.per-target",
        dest="per_target",
        type=flags.positive_int,
        help="override [pool] per_target",
    )
    flag(
        "--pool.max-adhoc-connections",
        dest="max_adhoc_connections",
        type=flags.positive_int,
        help="override [pool] max_adhoc_connections",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, then each flag's environment variable, then the default."""
    args = build_parser().parse_with_env(argv, os.environ)
    if args.route_prefix is None:
        path = urllib.parse.urlsplit(args.external_url).path if args.external_url else "/"
        args.route_prefix = flags.route_prefix(path or "/")
    return args


async def watch_config(exporter: Exporter, path: str, interval: float, seen: str | None) -> None:
    """Reloads the config every `interval` seconds when the file's checksum changed since the
    last look (`seen`). A file that fails to load is tried again only once it changes again."""
    while True:
        await asyncio.sleep(interval)
        checksum = await asyncio.to_thread(file_checksum, path)
        if checksum == seen:
            continue
        seen = checksum
        log.info("config file changed, reloading", extra={"config": path})
        # A failure is logged and counted by the exporter; the previous config stays.
        with contextlib.suppress(ReloadError):
            await exporter.reload()


def file_checksum(path: str) -> str | None:
    """SHA-256 of a regular file's bytes; None when it cannot be read (missing, or a FIFO,
    which the read refuses rather than block on)."""
    try:
        return hashlib.sha256(read_regular_file(path)).hexdigest()
    except UnreadableFile:
        return None


async def serve(
    args: argparse.Namespace, config: Config, sockets: Sequence[socket.socket] = ()
) -> None:
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    pool_overrides = {
        name: getattr(args, name)
        for name in ("idle_ttl", "max_connections", "per_target", "max_adhoc_connections")
        if getattr(args, name) is not None
    }
    settings = Settings(
        config_file=args.config_file,
        timeout_offset=args.timeout_offset,
        max_concurrent=args.max_concurrent,
        history_limit=args.history_limit,
        history_max_bytes=args.history_max_bytes,
        default_scrape_timeout=args.default_scrape_timeout,
        pool_overrides=pool_overrides,
    )
    nofile = raise_nofile_limit()
    pool_max = pool_descriptors(config, settings)
    limits = HttpLimits(
        read_header_timeout=args.read_header_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=size_http_connections(
            args.web_max_connections, nofile, pool_max, MERGED_SOURCE_CONNECTIONS
        ),
    )
    log.info(
        "HTTP limits: %d client connections, request head within %gs, idle keep-alive %gs "
        "(open file limit %d)",
        limits.max_connections,
        limits.read_header_timeout,
        limits.idle_timeout,
        nofile,
    )
    guard = ConnectionGuard(limits)
    web_config = WebConfigHolder(args.web_config_file) if args.web_config_file else None
    # Read before the exporter loads the file: a change in between is caught by the watcher.
    seen = file_checksum(args.config_file)
    exporter = await Exporter.start(settings)
    app = mount(
        create_app(exporter, (web_middleware(web_config),) if web_config else ()),
        args.route_prefix,
        (guard.middleware,),
    )
    # Probes in flight when SIGTERM comes may finish: none outlives the longest timeout.
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=config.longest_timeout + 1.0,
        keepalive_timeout=limits.idle_timeout,
    )
    try:
        await runner.setup()
    except BaseException:  # no cleanup follows a failed setup
        await exporter.stop()
        raise
    ssl_context = web_config.ssl_context() if web_config else None
    tls = " (TLS)" if ssl_context else ""
    if sockets:
        for sock in sockets:
            await GuardedSite(runner, guard, sock=sock, ssl_context=ssl_context).start()
            name = socket_name(sock)
            log.info("listening on %s from systemd%s", name, tls, extra={"listen": name})
    for address in () if sockets else args.listen:
        host, port = split_listen_address(address)
        site = GuardedSite(runner, guard, host=host, port=port, ssl_context=ssl_context)
        await site.start()
        log.info("listening on %s%s", address, tls, extra={"listen": address})
    if args.route_prefix != "/":
        log.info("serving under %s", args.external_url or args.route_prefix)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def start_task(coroutine: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def reload() -> None:
        # A failure is logged and counted by the exporter; the previous config stays.
        with contextlib.suppress(ReloadError):
            await exporter.reload()

    if args.auto_reload_interval > 0:
        start_task(watch_config(exporter, args.config_file, args.auto_reload_interval, seen))
    loop.add_signal_handler(signal.SIGHUP, lambda: start_task(reload()))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining %d probes in flight", exporter.in_flight)
    exporter.draining = True
    for task in tasks:
        task.cancel()
    await runner.cleanup()


def _print_issues(args: argparse.Namespace, exc: Exception) -> None:
    """`--config.check`: every error of the file, one a line, on stdout."""
    issues = getattr(exc, "issues", ())
    source = args.web_config_file if isinstance(exc, WebConfigError) else args.config_file
    for issue in issues:
        print(f"{source}: error: {issue}")
    if not issues:
        print(f"error: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["rpc"]:
        return rpc_command.main(argv[1:])
    args = parse_args(argv)
    logs.configure(args.log_level, args.log_format, args.log_prober)
    legacy = legacy_env_names(os.environ, socket.gethostname())
    if legacy:
        log.warning(
            "environment variables of the older kamailio_exporter are set and have no effect "
            "here: %s; see docs/migrating.md for what replaces them",
            ", ".join(legacy),
        )
    try:
        config = load_config(args.config_file)
        if args.web_config_file:
            WebConfigHolder(args.web_config_file)
        for address in args.listen:
            split_listen_address(address)
    except (ConfigError, WebConfigError, OSError, ValueError) as exc:
        log.error("invalid configuration: %s", exc, extra={"config": args.config_file})
        if args.config_check:
            _print_issues(args, exc)
        return 1
    if args.config_check:
        for warning in config.warnings:
            print(f"{args.config_file}: warning: {warning}")
        print(
            f"{args.config_file}: ok ({len(config.targets)} targets, "
            f"{len(config.allow)} allow rules, {len(config.modules)} modules)"
        )
        return 0
    try:
        sockets = systemd_sockets() if args.systemd_socket else []
    except SystemdSocketError as exc:
        log.error("%s", exc)
        return 1
    try:
        asyncio.run(serve(args, config, sockets))
    except (ConfigError, OSError) as exc:  # the listen port is taken, the file changed...
        log.error("cannot serve: %s", exc)
        return 1
    if config_loading():
        # A reload's read or parse still runs in its thread: exit now rather than wait for it,
        # and before the interpreter's teardown, which a thread running on would crash.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
