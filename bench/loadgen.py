"""A load generator that probes targets through the exporter the way Prometheus does.

paced:  every target once per --interval, target i at offset i * interval / N within it (the even
        spread Prometheus gives a job's targets), for --rounds rounds. Round 0 warms up (the
        exporter opens its connections); the later rounds are measured.
closed: --concurrency workers probe the targets in turn, back to back, for --duration seconds:
        the most probes per second one exporter process sustains.

The exporter's CPU time and RSS (from /proc/PID) are read at the start and end of the measured
window. Prints one JSON object. Bounded: at most N x rounds probes (paced) or --duration
seconds (closed), and never more than --max-seconds.

Run: python bench/loadgen.py --port P --exporter-pid PID --targets-file F paced --interval 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import ProcReading, machine_busy_seconds, raise_fd_limit, read_proc, summary
from httpclient import AsyncHttpPool, probe_request

PROBE_TIMEOUT = 10.0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    lateness: list[float] = field(default_factory=list)
    ok: int = 0
    down: int = 0
    overload: int = 0
    errors: int = 0
    first_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "probes": len(self.latencies) + self.overload + self.errors,
            "up": self.ok,
            "down": self.down,
            "overload": self.overload,
            "errors": self.errors,
            "first_error": self.first_error,
            "latency_ms": {
                k: v * 1000 if k != "n" else v for k, v in summary(self.latencies).items()
            },
            "lateness_ms": {
                k: v * 1000 if k != "n" else v for k, v in summary(self.lateness).items()
            },
        }


async def probe_once(pool: AsyncHttpPool, raw: bytes, tally: Tally | None) -> None:
    started = time.perf_counter()
    try:
        response = await pool.request(raw, PROBE_TIMEOUT)
    except Exception as exc:
        if tally is not None:
            tally.errors += 1
            tally.first_error = tally.first_error or f"{type(exc).__name__}: {exc}"
        return
    elapsed = time.perf_counter() - started
    if tally is None:
        return
    if response.status == 503:  # over --probe.max-concurrent: answered at once, not probed
        tally.overload += 1
        return
    tally.latencies.append(elapsed)
    if response.up():
        tally.ok += 1
    else:
        tally.down += 1


def window(
    before: ProcReading,
    after: ProcReading,
    seconds: float,
    probes: int,
    own_cpu: float,
    machine_cpu: float,
) -> dict[str, float]:
    cpu = after.cpu_seconds - before.cpu_seconds
    return {
        "loadgen_cpu_percent": 100 * own_cpu / seconds if seconds else 0.0,
        "machine_cpu_percent": 100 * machine_cpu / seconds if seconds else 0.0,
        "seconds": seconds,
        "probes_per_second": probes / seconds if seconds else 0.0,
        "cpu_seconds": cpu,
        "cpu_percent": 100 * cpu / seconds if seconds else 0.0,
        "cpu_ms_per_probe": 1000 * cpu / probes if probes else float("nan"),
        "rss_mib_after": after.rss_mib,
        "sockets_after": after.sockets,
    }


async def paced(args: argparse.Namespace, targets: list[str]) -> dict[str, object]:
    pool = AsyncHttpPool(args.host, args.port)
    requests = [probe_request(args.host, args.port, t, args.module) for t in targets]
    n = len(targets)
    step = args.interval / n
    loop = asyncio.get_running_loop()
    tally = Tally()
    tasks: set[asyncio.Task[None]] = set()
    measured: list[asyncio.Task[None]] = []
    t0 = loop.time() + 0.05
    before: ProcReading | None = None
    own_before = machine_before = 0.0
    measure_start = t0 + args.interval
    for round_index in range(args.rounds):
        in_window = round_index >= 1
        if in_window and before is None:
            await asyncio.sleep(max(measure_start - loop.time(), 0))
            before = read_proc(args.exporter_pid)
            own_before = time.process_time()
            machine_before = machine_busy_seconds()
            measure_start = loop.time()
        for index in range(n):
            due = t0 + round_index * args.interval + index * step
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_window:
                tally.lateness.append(max(loop.time() - due, 0.0))
            task = loop.create_task(probe_once(pool, requests[index], tally if in_window else None))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if in_window:
                measured.append(task)
    # The window ends when the last scheduled interval ends and its probes are answered.
    end_of_schedule = t0 + args.rounds * args.interval
    await asyncio.sleep(max(end_of_schedule - loop.time(), 0))
    if measured:
        await asyncio.wait(measured, timeout=PROBE_TIMEOUT + 1)
    after = read_proc(args.exporter_pid)
    own_cpu = time.process_time() - own_before if before is not None else 0.0
    machine_cpu = machine_busy_seconds() - machine_before if before is not None else 0.0
    seconds = loop.time() - measure_start
    if tasks:
        await asyncio.wait(tasks, timeout=PROBE_TIMEOUT + 1)
    pool.close()
    if before is None:
        before = after
    result: dict[str, object] = {
        "mode": "paced",
        "targets": n,
        "interval": args.interval,
        "measured_rounds": args.rounds - 1,
        "http_connections": pool.opened,
    }
    result.update(tally.as_dict())
    result.update(window(before, after, seconds, len(tally.latencies), own_cpu, machine_cpu))
    result["offered_per_second"] = n / args.interval
    return result


async def closed(args: argparse.Namespace, targets: list[str]) -> dict[str, object]:
    pool = AsyncHttpPool(args.host, args.port)
    requests = [probe_request(args.host, args.port, t, args.module) for t in targets]
    loop = asyncio.get_running_loop()
    tally = Tally()
    counter = 0
    # A short unmeasured warm-up first, so that every target's connection is open.
    warmup_end = loop.time() + args.warmup
    measure_end = warmup_end + args.duration

    async def worker() -> None:
        nonlocal counter
        while (now := loop.time()) < measure_end:
            index = counter % len(requests)
            counter += 1
            await probe_once(pool, requests[index], tally if now >= warmup_end else None)

    workers = [loop.create_task(worker()) for _ in range(args.concurrency)]
    await asyncio.sleep(max(warmup_end - loop.time(), 0))
    before = read_proc(args.exporter_pid)
    own_before = time.process_time()
    machine_before = machine_busy_seconds()
    started = loop.time()
    await asyncio.wait(workers, timeout=args.duration + PROBE_TIMEOUT + 1)
    after = read_proc(args.exporter_pid)
    own_cpu = time.process_time() - own_before
    machine_cpu = machine_busy_seconds() - machine_before
    seconds = loop.time() - started
    pool.close()
    result: dict[str, object] = {
        "mode": "closed",
        "targets": len(targets),
        "concurrency": args.concurrency,
        "http_connections": pool.opened,
    }
    result.update(tally.as_dict())
    result.update(window(before, after, seconds, len(tally.latencies), own_cpu, machine_cpu))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--exporter-pid", type=int, required=True)
    parser.add_argument("--targets-file", type=Path, required=True, help="one name a line")
    parser.add_argument("--count", type=int, default=0, help="first COUNT targets (0: all)")
    parser.add_argument("--module", default=None)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    modes = parser.add_subparsers(dest="mode", required=True)
    paced_parser = modes.add_parser("paced")
    paced_parser.add_argument("--interval", type=float, default=15.0)
    paced_parser.add_argument("--rounds", type=int, default=3, help="the first one warms up")
    closed_parser = modes.add_parser("closed")
    closed_parser.add_argument("--concurrency", type=int, default=64)
    closed_parser.add_argument("--duration", type=float, default=10.0)
    closed_parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    raise_fd_limit()
    targets = [line for line in args.targets_file.read_text().split() if line]
    if args.count:
        targets = targets[: args.count]
    run = paced if args.mode == "paced" else closed

    async def bounded() -> dict[str, object]:
        return await asyncio.wait_for(run(args, targets), args.max_seconds)

    print(json.dumps(asyncio.run(bounded())))


if __name__ == "__main__":
    main()
