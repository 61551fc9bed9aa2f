"""Measurement pieces shared by the benchmarks: the exporter as a child process, the RPCs of a
module, and variants measured in turns."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import VENV_BIN, Child, free_tcp_port, read_proc, summary
from floor import Calls, open_socket, read_replies
from httpclient import BlockingHttp, Response, probe_request

from probe_exporter.binrpc.address import Address
from probe_exporter.binrpc.codec import PacketReader, Param, encode_request
from probe_exporter.collectors import COLLECTORS, CollectorOptions
from probe_exporter.config import parse_config

SEED_COLLECTORS = ("stats", "pkg", "tcp_info", "rtpengine")
MINIMAL_COLLECTORS = ("tcp_info",)  # one small RPC: the fixed cost of a probe


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def modules_config(targets: Sequence[tuple[str, str]], pool: str = "") -> str:
    """A targets.toml with the modules `default` (every collector), `seed` (the seed
    exporter's RPCs) and `minimal` (one small RPC), and the given (name, address) targets."""
    seed = ", ".join(f'"{c}"' for c in SEED_COLLECTORS)
    minimal = ", ".join(f'"{c}"' for c in MINIMAL_COLLECTORS)
    lines = [
        pool,
        '[modules.default]\ncollectors = ["all"]\ntimeout = 5.0\n',
        f"[modules.seed]\ncollectors = [{seed}]\ntimeout = 5.0\n",
        f"[modules.minimal]\ncollectors = [{minimal}]\ntimeout = 5.0\n",
    ]
    lines += [f'[[targets]]\nname = "{name}"\naddress = "{address}"\n' for name, address in targets]
    return "\n".join(lines)


def module_calls(config_text: str, module: str, methods: frozenset[str]) -> Calls:
    """The RPCs a warm probe of `module` sends to a Kamailio offering `methods`."""
    spec = parse_config(config_text).modules[module]
    names = spec.collectors
    collectors = [c for name, c in COLLECTORS.items() if "all" in names or name in names]
    return [
        (call.method, call.params)
        for c in collectors
        if c.methods & methods
        for call in c.calls(spec.options)
    ]


def every_call() -> list[tuple[str, tuple[Param, ...]]]:
    """system.listMethods and every RPC of every collector (default options)."""
    calls: set[tuple[str, tuple[Param, ...]]] = {("system.listMethods", ())}
    for collector in COLLECTORS.values():
        calls.update((call.method, call.params) for call in collector.calls(CollectorOptions()))
    return sorted(calls)


def raw_call(address: Address, method: str, params: Sequence[Param] = ()) -> tuple[bytes, bytes]:
    """One RPC on a new socket: the request packet and the raw reply packet."""
    request = encode_request(method, params, 0x5EED)
    sock = open_socket(address)
    try:
        sock.sendall(request)
        buffer = bytearray()
        read_replies(sock, 1, buffer)
        return request, bytes(buffer)
    finally:
        sock.close()


def list_methods(address: Address) -> frozenset[str]:
    _, reply = raw_call(address, "system.listMethods")
    reader = PacketReader()
    reader.feed(reply)
    packet = reader.next_packet()
    assert packet is not None
    return frozenset(v for v in packet.result() if isinstance(v, str))


class Exporter:
    """kamailio-probe-exporter as a child process on a free loopback port."""

    # The tree every exporter runs when none is given (run_all.py --source: the copy with the
    # compiled modules that scripts/bench.sh builds); None: the venv's installed package.
    default_source: Path | None = None

    def __init__(
        self,
        workdir: Path,
        name: str,
        config_text: str,
        extra_args: Sequence[str] = (),
        source: Path | None = None,
    ) -> None:
        """`source`: a tree whose probe_exporter runs (first on PYTHONPATH: an older commit,
        or a copy with the compiled modules); `default_source` when None."""
        self.name = name
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config_text)
        self.port = free_tcp_port()
        program = [str(VENV_BIN / "kamailio-probe-exporter")]
        source = source or self.default_source
        if source is not None:
            # -P: not the working directory first on sys.path, where a checkout's pure-Python
            # package would shadow the one on PYTHONPATH
            program = [str(VENV_BIN / "python"), "-P", "-m", "probe_exporter"]
        env = source_env(source)
        command = [
            *program,
            "--config.file",
            str(self.config_path),
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            *extra_args,
        ]
        self.child = Child(command, workdir / f"{name}.log", env=env)

    @property
    def pid(self) -> int:
        return self.child.pid

    def get(self, path: str) -> Response | None:
        """A GET on a new connection; None while nothing listens."""
        try:
            http = BlockingHttp("127.0.0.1", self.port, timeout=15.0)
        except OSError:
            return None
        try:
            response, _ = http.request(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            return response
        finally:
            http.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.alive():
                raise RuntimeError(f"exporter {self.name} exited:\n{self.child.log_tail()}")
            response = self.get("/-/ready")
            if response is not None and response.status == 200:
                return
            time.sleep(0.01)
        raise RuntimeError(
            f"exporter {self.name} not ready in {timeout:g} s:\n{self.child.log_tail()}"
        )

    def self_metric(self, name: str) -> float | None:
        response = self.get("/metrics")
        if response is None:
            return None
        for line in response.text().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self) -> None:
        self.child.stop()


def replay_child(
    workdir: Path, name: str, targets: int, captures: Sequence[Path], max_seconds: int
) -> Child:
    """bench/replay_server.py serving `targets` simulated Kamailios over TCP, as a child; it
    prints `addresses <file>` once they listen (benchlib.wait_for_line)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve().parent / "replay_server.py"),
        "--tcp",
        str(targets),
        "--addresses-out",
        str(workdir / f"{name}-addresses.txt"),
        "--max-seconds",
        str(max_seconds),
    ]
    for directory in captures:
        command += ["--captures", str(directory)]
    return Child(command, workdir / f"{name}.log", stdout_pipe=True)


def source_env(source: Path | None = None) -> dict[str, str] | None:
    """The environment of a child that imports probe_exporter from `source` (by default
    Exporter.default_source); None (inherit) for the venv's installed package."""
    source = source or Exporter.default_source
    return None if source is None else {**os.environ, "PYTHONPATH": str(source)}


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    """Stops every thing (anything with stop()) on the way out, the last started first."""
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                thing.stop()


def sample_count(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


@dataclass
class Variant:
    name: str
    run: Callable[[], float]
    pid: int | None = None  # the exporter whose CPU this variant costs
    check: Callable[[], None] | None = None


def interleaved(
    variants: list[Variant], count: int, block: int, block_warmup: int = 0
) -> dict[str, dict[str, Any]]:
    """Runs every variant `count` times in blocks of `block`, the variants taking turns, so
    that each sees the same machine; the exporter's CPU time is read around its blocks.
    `block_warmup` unmeasured runs open each block: a block of back-to-back probes that
    follows one of probes spaced apart then starts warm, as back to back means."""
    for variant in variants:  # warm-up, unmeasured
        for _ in range(max(block // 2, 1)):
            variant.run()
        if variant.check:
            variant.check()
    latencies: dict[str, list[float]] = {v.name: [] for v in variants}
    cpu: dict[str, float] = {v.name: 0.0 for v in variants}
    for _ in range(max(count // block, 1)):
        for variant in variants:
            for _ in range(block_warmup):
                variant.run()
            before = read_proc(variant.pid).cpu_seconds if variant.pid else 0.0
            samples = latencies[variant.name]
            for _ in range(block):
                samples.append(variant.run())
            if variant.pid:
                cpu[variant.name] += read_proc(variant.pid).cpu_seconds - before
    results = {}
    for variant in variants:
        samples = latencies[variant.name]
        stats: dict[str, Any] = {
            k: v * 1000 if k != "n" else v for k, v in summary(samples).items()
        }
        if variant.pid:
            stats["cpu_ms_per_probe"] = 1000 * cpu[variant.name] / len(samples)
        results[variant.name] = stats
    return results


def after_idle(run: Callable[[], float], gap: float) -> Callable[[], float]:
    """`run`, after the exporter idled `gap` seconds: a probe as paced scrapes send it."""

    def idle_then_run() -> float:
        time.sleep(gap)
        return run()

    return idle_then_run


def probe_runner(http: BlockingHttp, target: str, module: str) -> Callable[[], float]:
    raw = probe_request(http.host, http.port, target, module)

    def run() -> float:
        response, elapsed = http.request(raw)
        if response.status != 200:
            raise RuntimeError(f"/probe answered {response.status}")
        return elapsed

    return run


def probe_check(http: BlockingHttp, target: str, module: str) -> Callable[[], None]:
    def check() -> None:
        response, _ = http.request(probe_request(http.host, http.port, target, module))
        if not response.up():
            raise RuntimeError(
                f"probe of {target} (module {module}) is not kamailio_up 1:\n"
                + response.text().decode()[:2000]
            )

    return check
