"""Flag names and listen addresses, shared by the command line and the container's health check.

Kept free of heavy imports: the health check runs every 30 s in the container and must stay
cheap, so it cannot import the command line (aiohttp and the whole exporter).
"""

from __future__ import annotations

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
