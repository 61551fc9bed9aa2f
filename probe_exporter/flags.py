"""Flags that each have an environment variable, and listen addresses: the command line's
machinery (cli.py declares the flags), shared with the container's health check.

Kept free of heavy imports: the health check runs every 30 s in the container and must stay
cheap, so it cannot import the command line (aiohttp and the whole exporter).
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

ENV_PREFIX = "KAMAILIO_EXPORTER_"
DEFAULT_LISTEN = ":9494"


def env_name(flag: str) -> str:
    """`--web.listen-address` -> `KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS`."""
    return ENV_PREFIX + flag.lstrip("-").replace(".", "_").replace("-", "_").upper()


def env_listen_addresses(value: str | None) -> list[str]:
    """The listen addresses of the comma-separated environment variable, else the default."""
    addresses = [a.strip() for a in value.split(",") if a.strip()] if value else []
    return addresses or [DEFAULT_LISTEN]


def split_listen_address(address: str) -> tuple[str | None, int]:
    """`:9494` (every interface), `127.0.0.1:9494`, `[::1]:9494` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad listen address {address!r}: want [HOST]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or None, int(port)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def route_prefix(text: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"must start with '/': {text}")
    return "/" + text.strip("/") if text.strip("/") else "/"


def external_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"must be an absolute http(s) URL: {text}")
    return text


@dataclass(frozen=True)
class EnvFlag:
    name: str
    dest: str
    default: object
    env: str
    kind: str  # "value", "append" (repeatable; comma-separated in the env) or "bool"


class EnvFlagParser(argparse.ArgumentParser):
    """Flags that each have an environment variable, checked exactly as the flag is: the same
    type, the same choices, the same message (naming the variable), exit code 2."""

    def __init__(self, **kwargs: Any) -> None:
        # No defaults in the namespace: what is missing was not on the command line.
        super().__init__(argument_default=argparse.SUPPRESS, **kwargs)
        self.env_flags: list[EnvFlag] = []
        self._env_context: str | None = None

    def flag(self, name: str, *, dest: str, default: object = None, **kwargs: Any) -> None:
        env = env_name(name)
        action = kwargs.get("action")
        kind = {"append": "append", "store_true": "bool"}.get(str(action), "value")
        self.env_flags.append(EnvFlag(name, dest, default, env, kind))
        text = ",".join(default) if isinstance(default, list) else str(default)
        shown = "" if default in (None, False) else f" (default: {text})"
        kwargs["help"] = f"{kwargs.get('help', '')}{shown} [env {env}]"
        self.add_argument(name, dest=dest, **kwargs)

    def error(self, message: str) -> NoReturn:
        if self._env_context:
            message = f"{self._env_context}: {message}"
        super().error(message)

    def from_env(self, flag: EnvFlag, text: str) -> object:
        self._env_context = f"environment variable {flag.env}={text!r}"
        try:
            if flag.kind == "bool":
                if text.lower() not in ("true", "false"):
                    self.error("must be true or false")
                return text.lower() == "true"
            values = [v.strip() for v in text.split(",")] if flag.kind == "append" else [text]
            namespace = self.parse_args([f"{flag.name}={v}" for v in values if v])
            return getattr(namespace, flag.dest, flag.default)
        finally:
            self._env_context = None

    def parse_with_env(self, argv: Sequence[str], environ: Mapping[str, str]) -> argparse.Namespace:
        """The command line, then each flag's environment variable (an empty one counts as
        unset), then the default."""
        args = self.parse_args(argv)
        for flag in self.env_flags:
            if hasattr(args, flag.dest):
                continue
            text = environ.get(flag.env, "")
            setattr(args, flag.dest, self.from_env(flag, text) if text else flag.default)
        return args


# Environment variables of the older single-target Go exporter (pascomnet/kamailio_exporter;
# florentchauveau's reads none). HOST, PORT and DEBUG are generic names that other software
# sets for its own reasons (tcsh exports HOST as the machine's name, PaaS platforms set PORT
# for the app's listener), so they alone never warn. HOST and PORT together, with HOST not this
# machine's name, is that exporter's TCP set-up; so is any of the distinctive names.
LEGACY_ENV = (
    "SOCKET_PATH",
    "BIND_IP",
    "BIND_PORT",
    "METRICS_PATH",
    "RTPMETRICS_PATH",
    "CUSTOM_KAMAILIO_METRICS_URL",
)
LEGACY_GENERIC_ENV = ("HOST", "PORT", "DEBUG")


def legacy_env_names(environ: Mapping[str, str], hostname: str) -> list[str]:
    """The old exporter's variables set in `environ`, when they look like its configuration."""
    distinctive = [name for name in LEGACY_ENV if name in environ]
    host = environ.get("HOST")
    old_tcp_setup = (
        host is not None
        and "PORT" in environ
        and host.lower() not in (hostname.lower(), hostname.split(".")[0].lower())
    )
    if not distinctive and not old_tcp_setup:
        return []
    return distinctive + [name for name in LEGACY_GENERIC_ENV if name in environ]
