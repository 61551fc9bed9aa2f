"""WAN: the exporter and a simulated Kamailio (bench/replay_server.py) 20 ms apart each way.

Where the kernel has netem, the replay server runs in a network namespace of our own, joined to
ours by a veth pair whose both ends delay their egress with `tc netem delay 20ms`. Where it has
not (netem is a kernel module that some kernels lack), bench/delay_proxy.py stands in for the
link on loopback, and the report says so with the error `tc` gave.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import Child, wait_for_line
from floor import FloorClient, sequential_probe
from httpclient import BlockingHttp
from measure import (
    Exporter,
    Variant,
    interleaved,
    list_methods,
    log,
    module_calls,
    modules_config,
    probe_check,
    probe_runner,
    replay_child,
    stopping,
)

from probe_exporter.binrpc.address import parse_address

BENCH = Path(__file__).resolve().parent
DELAY = 0.020  # seconds, each way
NAMESPACE = f"kpe-bench-{os.getpid()}"
VETH_OUTER, VETH_INNER = f"kpe{os.getpid()}o", f"kpe{os.getpid()}i"
OUTER_IP, INNER_IP = "169.254.213.1", "169.254.213.2"  # a link-local /30 inside our own link


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)


class NetemLink:
    """A namespace with the replay server, behind a veth pair delayed by netem both ways."""

    method = "network namespace, veth pair, `tc netem delay` on both ends"

    def __init__(self, workdir: Path, captures: list[Path]) -> None:
        self.replay: Child | None = None
        delay = f"{DELAY * 1000:g}ms"
        steps = [
            ["ip", "netns", "add", NAMESPACE],
            ["ip", "link", "add", VETH_OUTER, "type", "veth", "peer", "name", VETH_INNER],
            ["ip", "link", "set", VETH_INNER, "netns", NAMESPACE],
            ["ip", "addr", "add", f"{OUTER_IP}/30", "dev", VETH_OUTER],
            ["ip", "link", "set", VETH_OUTER, "up"],
            ["ip", "-n", NAMESPACE, "addr", "add", f"{INNER_IP}/30", "dev", VETH_INNER],
            ["ip", "-n", NAMESPACE, "link", "set", VETH_INNER, "up"],
            ["ip", "-n", NAMESPACE, "link", "set", "lo", "up"],
            ["tc", "qdisc", "add", "dev", VETH_OUTER, "root", "netem", "delay", delay],
            [
                "tc",
                "-n",
                NAMESPACE,
                "qdisc",
                "add",
                "dev",
                VETH_INNER,
                "root",
                "netem",
                "delay",
                delay,
            ],
        ]
        try:
            for step in steps:
                done = _run(step)
                if done.returncode != 0:
                    raise RuntimeError(f"`{' '.join(step)}`: {done.stderr.strip()}")
            command = [
                "ip",
                "netns",
                "exec",
                NAMESPACE,
                sys.executable,
                str(BENCH / "replay_server.py"),
                "--host",
                INNER_IP,
                "--tcp",
                "1",
                "--addresses-out",
                str(workdir / "wan-address.txt"),
                "--max-seconds",
                "900",
            ]
            for directory in captures:
                command += ["--captures", str(directory)]
            self.replay = Child(command, workdir / "wan-replay.log", stdout_pipe=True)
            addresses = Path(wait_for_line(self.replay, "addresses", 30))
            self.address = addresses.read_text().split()[0]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.replay is not None:
            self.replay.stop()
        _run(["ip", "link", "del", VETH_OUTER])
        _run(["ip", "netns", "del", NAMESPACE])


class ProxyLink:
    """The replay server on loopback, behind bench/delay_proxy.py."""

    method = (
        "**substitute**: `bench/delay_proxy.py`, a TCP proxy on 127.0.0.1 in its own "
        "process, holds every byte for the delay in each direction, and charges a new "
        "connection the TCP handshake's round trip before its first bytes go on"
    )

    def __init__(self, workdir: Path, captures: list[Path]) -> None:
        self.children: list[Child] = []
        try:
            replay = replay_child(workdir, "wan-replay", 1, captures, 900)
            self.children.append(replay)
            upstream = Path(wait_for_line(replay, "addresses", 30)).read_text().split()[0]
            proxy = Child(
                [
                    sys.executable,
                    str(BENCH / "delay_proxy.py"),
                    "--upstream",
                    upstream.removeprefix("tcp:"),
                    "--delay",
                    str(DELAY),
                    "--max-seconds",
                    "900",
                ],
                workdir / "delay-proxy.log",
                stdout_pipe=True,
            )
            self.children.append(proxy)
            self.address = f"tcp:127.0.0.1:{wait_for_line(proxy, 'listening', 30)}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()


def netem_feasibility() -> dict[str, Any]:
    """What this machine allows: namespaces, veth pairs, netem (everything made is removed)."""
    if shutil.which("ip") is None or shutil.which("tc") is None:
        return {
            "netns": False,
            "veth": False,
            "netem": False,
            "error": "iproute2 (ip, tc) is not installed",
        }
    outcome: dict[str, Any] = {"netns": False, "veth": False, "netem": False, "error": ""}
    steps = [
        ("netns", ["ip", "netns", "add", NAMESPACE]),
        ("veth", ["ip", "link", "add", VETH_OUTER, "type", "veth", "peer", "name", VETH_INNER]),
        ("netem", ["tc", "qdisc", "add", "dev", VETH_OUTER, "root", "netem", "delay", "20ms"]),
    ]
    try:
        for name, step in steps:
            done = _run(step)
            if done.returncode != 0:
                outcome["error"] = f"`{' '.join(step)}`: {done.stderr.strip()}"
                break
            outcome[name] = True
    finally:
        _run(["ip", "link", "del", VETH_OUTER])
        _run(["ip", "netns", "del", NAMESPACE])
    return outcome


def wan(probes: int, workdir: Path, captures: list[Path]) -> dict[str, Any]:
    feasibility = netem_feasibility()
    link: NetemLink | ProxyLink = (
        NetemLink(workdir, captures) if feasibility["netem"] else ProxyLink(workdir, captures)
    )
    with stopping(link):
        config = modules_config([("kam-wan", link.address)])
        methods = list_methods(parse_address(link.address))
        warm = Exporter(workdir, "wan-warm", config)
        # A pool whose connections expire at once: every probe connects anew.
        cold = Exporter(workdir, "wan-cold", config, ["--pool.idle-ttl", "0.05"])
        closers: list[FloorClient | BlockingHttp] = []
        with stopping(warm, cold):
            warm.wait_ready()
            cold.wait_ready()
            address = parse_address(link.address)
            variants = []
            for module in ("seed", "default"):
                label = "seed" if module == "seed" else "full"
                calls = module_calls(config, module, methods)
                floor = FloorClient(address, calls)
                http = BlockingHttp("127.0.0.1", warm.port)
                closers += [floor, http]
                variants += [
                    Variant(f"floor {label}", floor.run),
                    Variant(
                        f"probe {label} pooled",
                        probe_runner(http, "kam-wan", module),
                        warm.pid,
                        probe_check(http, "kam-wan", module),
                    ),
                    Variant(
                        f"new connection + sequential {label}",
                        lambda calls=calls: sequential_probe(address, calls),
                    ),
                ]
            cold_http = BlockingHttp("127.0.0.1", cold.port)
            closers.append(cold_http)
            cold_run = probe_runner(cold_http, "kam-wan", "default")

            def cold_probe() -> float:
                time.sleep(0.15)  # the idle connection expires (TTL 0.05 s, swept every 0.05 s)
                return cold_run()

            variants.append(Variant("probe full new connection", cold_probe, cold.pid))
            log(f"WAN ({type(link).__name__}): {len(variants)} variants x {probes}")
            try:
                results = interleaved(variants, probes, max(min(probes // 4, 10), 1))
            finally:
                for closer in closers:
                    closer.close()
    return {
        "feasibility": feasibility,
        "delay_ms": DELAY * 1000,
        "method": link.method,
        "netem": isinstance(link, NetemLink),
        "variants": results,
    }
