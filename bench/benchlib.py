"""Shared pieces of the benchmarks: BINRPC framing without decoding, readings from /proc,
summaries of latency samples, and child processes that are always stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The benchmarks start Kamailio with the tests' harness (tests/kamailio_harness.py).
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
VENV_BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

BINRPC_MAGIC = 0xA1
BINRPC_FAULT = 3


# -- BINRPC framing (enough to split and rebuild packets; decoding is the codec's job) --------


def binrpc_header(packet_type: int, body_len: int, cookie: int) -> bytes:
    """A packet header with minimal length and cookie byte counts, as Kamailio writes them."""
    len_size = max((body_len.bit_length() + 7) >> 3, 1)
    cookie_size = max((cookie.bit_length() + 7) >> 3, 1)
    return (
        bytes((BINRPC_MAGIC, (packet_type << 4) | ((len_size - 1) << 2) | (cookie_size - 1)))
        + body_len.to_bytes(len_size)
        + cookie.to_bytes(cookie_size)
    )


def split_packet(buffer: bytes | bytearray, start: int = 0) -> tuple[int, int, int, int] | None:
    """(type, cookie, body start, packet end) of the packet at `start`, None while incomplete."""
    available = len(buffer) - start
    if available < 2:
        return None
    if buffer[start] != BINRPC_MAGIC:
        raise ValueError(f"bad BINRPC magic byte {buffer[start]:#x} at offset {start}")
    flags = buffer[start + 1]
    len_end = start + 3 + ((flags >> 2) & 3)
    body_start = len_end + 1 + (flags & 3)
    if len(buffer) < body_start:
        return None
    end = body_start + int.from_bytes(buffer[start + 2 : len_end])
    if len(buffer) < end:
        return None
    return flags >> 4, int.from_bytes(buffer[len_end:body_start]), body_start, end


# -- /proc readings --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcReading:
    cpu_seconds: float  # user + system time of every thread, from /proc/PID/stat
    rss_bytes: int
    sockets: int  # open socket file descriptors

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / (1 << 20)


def read_proc(pid: int) -> ProcReading:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the command name: state is field 3, utime 14, stime 15, rss 24 (1-based in proc(5)).
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = int(fields[21]) * PAGE_SIZE
    sockets = 0
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            if os.readlink(f"{fd_dir}/{name}").startswith("socket:"):
                sockets += 1
    return ProcReading(cpu, rss, sockets)


def _cpu_ticks() -> list[int]:
    # user nice system idle iowait irq softirq steal ..., summed over the cores
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine_busy_seconds() -> float:
    """CPU time the processes of the machine have used (all cores; user, nice and system, not
    interrupts), from /proc/stat."""
    ticks = _cpu_ticks()
    return (ticks[0] + ticks[1] + ticks[2]) / CLOCK_TICKS


def steal_seconds() -> float:
    """Time the hypervisor ran something else while this machine's cores wanted to run."""
    return _cpu_ticks()[7] / CLOCK_TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in a process group (a Kamailio and its children)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # pgrp is field 5 in proc(5)
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def machine() -> dict[str, str]:
    """What the benchmarks ran on: CPU model, cores, kernel, Python and Kamailio versions."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    kamailio = "not installed"
    for binary in ("kamailio", "/usr/sbin/kamailio", "/usr/local/sbin/kamailio"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
            first = out.stdout.splitlines()[0] if out.stdout else ""
            if first:
                kamailio = first.replace("version:", "").strip()
                break
    mem_total = "unknown"
    with contextlib.suppress(OSError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem_total = f"{kib / (1 << 20):.1f} GiB"
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": mem_total,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "kamailio": kamailio,
    }


# -- summaries -------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    index = min(int(len(sorted_values) * fraction), len(sorted_values) - 1)
    return sorted_values[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median, p99 and mean of latency samples (same unit in, same unit out)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "median": float("nan"), "p99": float("nan"), "mean": float("nan")}
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p99": percentile(ordered, 0.99),
        "mean": statistics.fmean(ordered),
    }


# -- child processes -------------------------------------------------------------------------


def _parent_death_signal() -> None:
    """Runs in the child before exec: SIGTERM to it if the benchmark process dies."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class Child:
    """A child process in its own process group, stopped by PID (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        stdout_pipe: bool = False,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            env=env,
            process_group=0,
            preexec_fn=_parent_death_signal,
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> int:
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self._log.close()
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_for_line(child: Child, prefix: str, timeout: float) -> str:
    """Reads the child's stdout until a line starting with `prefix` (the child's ready signal)."""
    assert child.process.stdout is not None
    deadline = time.monotonic() + timeout
    stream = child.process.stdout
    os.set_blocking(stream.fileno(), False)
    buffer = b""
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.command[1]} exited early:\n{child.log_tail()}")
        chunk = stream.read()
        if chunk:
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
        time.sleep(0.01)
    raise RuntimeError(
        f"{child.command[1]}: no '{prefix}' line within {timeout:g} s:\n{child.log_tail()}"
    )


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit() -> None:
    """Lifts the soft open-files limit to the hard one: thousands of targets need sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def time_operation(
    operation: Callable[[], object], iterations: int, warmup_seconds: float = 1.0
) -> tuple[float, float]:
    """Median and p99 of one call of `operation`, in microseconds, after running it untimed
    for `warmup_seconds` (a virtual CPU needs a while to reach a steady speed)."""
    warmup_end = time.perf_counter() + warmup_seconds
    while time.perf_counter() < warmup_end:
        operation()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        start = clock()
        operation()
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[len(samples) * 99 // 100] / 1000


async def until_stopped(max_seconds: float) -> None:
    """Returns on SIGTERM or SIGINT, or after `max_seconds`: how a bench server runs bounded."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        print("max-seconds reached, exiting", file=sys.stderr)
