"""The command line: Prometheus-style flags (each also an environment variable), then serve."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from . import __version__, logs, rpc_command
from .config import ConfigError, load_config
from .service import Exporter, ReloadError, Settings
from .web import create_app
from .webconfig import WebConfigError, WebConfigHolder, web_middleware

log = logging.getLogger("probe_exporter")

ENV_PREFIX = "KAMAILIO_EXPORTER_"
# The cyclic GC runs once this many more container objects were made than freed. Probes make
# and free thousands (replies, families) by reference counting alone; at Python's default of
# 700 the GC ran every dozen probes, scanning the probes in flight, and took 15-20 % of the
# exporter's CPU under load (bench/). Cycles left over still set it off at 5,000.
GC_THRESHOLD = 5000
DEFAULT_LISTEN = ":9494"


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace(".", "_").replace("-", "_").upper()


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kamailio-probe-exporter",
        description="Prometheus exporter for a fleet of Kamailio servers: Prometheus scrapes "
        "/probe?target=..., the exporter asks that Kamailio over BINRPC. "
        f"Every flag can also be set with an environment variable {ENV_PREFIX}<FLAG> "
        "(e.g. KAMAILIO_EXPORTER_CONFIG_FILE). "
        "Subcommand: 'rpc ADDRESS METHOD [PARAMS...]' calls one RPC and prints JSON.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def flag(name: str, **kwargs: object) -> None:
        env = _env_name(name)
        if env in os.environ and kwargs.get("action") != "append":
            kwargs["default"] = os.environ[env]
        kwargs["help"] = f"{kwargs.get('help', '')} [env {env}]"
        parser.add_argument(name, **kwargs)  # type: ignore[arg-type]

    flag("--config.file", dest="config_file", default="targets.toml", help="the targets.toml file")
    parser.add_argument(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="validate the config file and exit",
    )
    flag(
        "--web.listen-address",
        dest="listen",
        action="append",
        default=None,
        help=f"address to listen on, repeatable (default {DEFAULT_LISTEN})",
    )
    flag(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        help="exporter-toolkit web config file: TLS and basic auth",
    )
    flag("--log.level", dest="log_level", default="info", choices=sorted(logs.LEVELS))
    flag("--log.format", dest="log_format", default="logfmt", choices=("logfmt", "json"))
    flag(
        "--timeout-offset",
        dest="timeout_offset",
        type=_non_negative_float,
        default=0.5,
        help="seconds subtracted from Prometheus' scrape timeout to get the probe deadline",
    )
    flag(
        "--probe.default-scrape-timeout",
        dest="default_scrape_timeout",
        type=_positive_float,
        default=10.0,
        help="scrape timeout assumed when the scraper sends no "
        "X-Prometheus-Scrape-Timeout-Seconds header",
    )
    flag(
        "--probe.max-concurrent",
        dest="max_concurrent",
        type=_positive_int,
        default=256,
        help="probes in flight at most; beyond it /probe answers 503 with Retry-After",
    )
    flag(
        "--history.limit",
        dest="history_limit",
        type=_non_negative_int,
        default=100,
        help="recent probes kept for the landing page and /logs (0 disables)",
    )
    flag(
        "--history.max-bytes",
        dest="history_max_bytes",
        type=_positive_int,
        default=64 << 20,
        help="rendered metrics kept in the history at most, in bytes; the oldest probes go "
        "first (the newest is always kept)",
    )
    flag(
        "--pool.idle-ttl",
        dest="idle_ttl",
        type=_positive_float,
        default=None,
        help="override [pool] idle_ttl",
    )
    flag(
        "--pool.max-connections",
        dest="max_connections",
        type=_positive_int,
        default=None,
        help="override [pool] max_connections",
    )
    flag(
        "--pool.per-target",
        dest="per_target",
        type=_positive_int,
        default=None,
        help="override [pool] per_target",
    )
    flag(
        "--pool.max-adhoc-connections",
        dest="max_adhoc_connections",
        type=_positive_int,
        default=None,
        help="override [pool] max_adhoc_connections",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.listen is None:
        env = os.environ.get(_env_name("--web.listen-address"))
        args.listen = [a.strip() for a in env.split(",") if a.strip()] if env else [DEFAULT_LISTEN]
    # Values from the environment arrive as strings: run them through the same checks.
    for name, convert in (
        ("timeout_offset", _non_negative_float),
        ("default_scrape_timeout", _positive_float),
        ("max_concurrent", _positive_int),
        ("history_limit", _non_negative_int),
        ("history_max_bytes", _positive_int),
        ("idle_ttl", _positive_float),
        ("max_connections", _positive_int),
        ("per_target", _positive_int),
        ("max_adhoc_connections", _positive_int),
    ):
        value = getattr(args, name)
        if isinstance(value, str):
            try:
                setattr(args, name, convert(value))
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"{_env_name('--' + name)}: {exc}")
    return args


def split_listen_address(address: str) -> tuple[str | None, int]:
    """`:9494` (every interface), `127.0.0.1:9494`, `[::1]:9494` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad listen address {address!r}: want [HOST]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or None, int(port)


async def serve(args: argparse.Namespace, longest_timeout: float) -> None:
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
    web_config = WebConfigHolder(args.web_config_file) if args.web_config_file else None
    exporter = await Exporter.start(settings)
    app = create_app(exporter, (web_middleware(web_config),) if web_config else ())
    # Probes in flight when SIGTERM comes may finish: none outlives the longest timeout.
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=longest_timeout + 1.0
    )
    try:
        await runner.setup()
    except BaseException:  # no cleanup follows a failed setup
        await exporter.stop()
        raise
    ssl_context = web_config.ssl_context() if web_config else None
    for address in args.listen:
        host, port = split_listen_address(address)
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        log.info(
            "listening on %s%s", address, " (TLS)" if ssl_context else "", extra={"listen": address}
        )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        # A failure is logged and counted by the exporter; the previous config stays.
        with contextlib.suppress(ReloadError):
            await exporter.reload()

    def on_hup() -> None:
        task = loop.create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining %d probes in flight", exporter.in_flight)
    exporter.draining = True
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
    logs.configure(args.log_level, args.log_format)
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
        asyncio.run(serve(args, config.longest_timeout))
    except (ConfigError, OSError) as exc:  # the listen port is taken, the file changed...
        log.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
