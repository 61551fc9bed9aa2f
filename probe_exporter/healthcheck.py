"""The container's health check: GET /-/healthy where the running exporter listens.

The image's HEALTHCHECK runs `python -m probe_exporter.healthcheck` next to the exporter. The
flags given to `docker run IMAGE --flag ...` reach only the exporter's process, so the check
reads that process's command line and environment from /proc, and asks the first listen address
it finds there (`--web.listen-address`, else `KAMAILIO_EXPORTER_WEB_LISTEN_ADDRESS`, else :9494),
over https when `--web.config.file` turns on TLS. The certificate is not verified: the check asks
whether this process answers, not who it is. It imports neither aiohttp nor the exporter's
modules: it runs every 30 s and must stay cheap.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from .flags import env_listen_addresses, env_name, split_listen_address

EXPORTER_NAMES = ("kamailio-probe-exporter", "probe_exporter", "probe_exporter.cli")
TIMEOUT = 4.0


def exporter_command(cmdline: Sequence[str]) -> list[str] | None:
    """The exporter's flags when `cmdline` runs the exporter's server, else None.

    `cmdline` is a process's argv: the console script (`python .../kamailio-probe-exporter ...`)
    or the module (`python -m probe_exporter ...`); `rpc` calls and this check are not servers.
    """
    for index, word in enumerate(cmdline[:3]):
        if os.path.basename(word) in EXPORTER_NAMES:
            flags = list(cmdline[index + 1 :])
            return None if flags[:1] == ["rpc"] else flags
    return None


def find_exporter(proc: Path = Path("/proc")) -> tuple[list[str], dict[str, str], Path] | None:
    """(flags, environment, working directory) of the exporter process with the lowest pid."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes().decode(errors="replace")
            flags = exporter_command(cmdline.split("\0")[:-1])
            if flags is None:
                continue
            environ = (proc / str(pid) / "environ").read_bytes().decode(errors="replace")
            cwd = (proc / str(pid) / "cwd").resolve()
        except OSError:  # gone meanwhile, or another user's process
            continue
        env = dict(item.partition("=")[::2] for item in environ.split("\0") if "=" in item)
        return flags, env, cwd
    return None


def health_url(flags: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """The /-/healthy URL of an exporter started with `flags` and `env` in `cwd`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--web.listen-address", dest="listen", action="append")
    parser.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=env.get(env_name("--web.config.file")),
    )
    args, _ = parser.parse_known_args(list(flags))
    listen = args.listen or env_listen_addresses(env.get(env_name("--web.listen-address")))
    host, port = split_listen_address(listen[0])
    if host in (None, "", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if args.web_config_file and serves_tls(cwd / args.web_config_file) else "http"
    return f"{scheme}://{host}:{port}/-/healthy"


def serves_tls(web_config_file: Path) -> bool:
    """Whether an exporter-toolkit web config turns on TLS (a non-empty tls_server_config)."""
    import yaml  # here: a third of the check's start-up, and most exporters have no web config

    try:
        document = yaml.safe_load(web_config_file.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{web_config_file}: {exc}") from exc
    return isinstance(document, dict) and bool(document.get("tls_server_config"))


def check(url: str) -> int:
    """0 when `url` answers 200 within TIMEOUT, else 1 (the reason goes to stderr)."""
    try:
        context = ssl._create_unverified_context()
        with urllib.request.urlopen(url, timeout=TIMEOUT, context=context) as answer:
            status = int(answer.status)
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {status}")
    return 0 if status == 200 else 1


def main() -> int:
    found = find_exporter()
    flags, env, cwd = found if found else ([], dict(os.environ), Path.cwd())
    try:
        url = health_url(flags, env, cwd)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return check(url)


if __name__ == "__main__":
    sys.exit(main())
