"""Every benchmark of the exporter in one run, written to BENCHMARKS.md (and a JSON file).

Run: ./scripts/bench.sh [--quick]   (or .venv/bin/python bench/run_all.py [--quick])

Measured side by side in this one run, on this machine:
1. serial /probe requests against a real Kamailio (tests/kamailio_harness.py) over TCP and the
   unix socket, for the seed exporter's RPC set and for the full set, interleaved in blocks with
   the floor: the same RPCs pipelined on one persistent socket by a client that decodes nothing;
2. cold start: process start to the first successful probe;
3. WAN (bench/wan.py): 20 ms each way between the exporter and a simulated Kamailio, pooled
   pipelined probes against a new connection with sequential RPCs per probe;
4. fleet throughput: N simulated Kamailios (bench/replay_server.py, real captured replies) probed
   through one exporter process by bench/loadgen.py, Prometheus-paced, then back to back;
   RSS idle, with 1,000 targets pooled and after the fleet run;
5. py-spy profiles of the exporter (bench/profiles.py);
6. the codec, round trip and exposition benchmarks of bench/ (their own output, verbatim);
7. the machine's idle penalty (bench/idle_penalty.py): a probe's in-process work, no I/O, back
   to back and after sleeping.

Every process started here is stopped by PID; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import before_after
from benchlib import (
    ROOT,
    Child,
    group_cpu_seconds,
    machine,
    machine_busy_seconds,
    raise_fd_limit,
    read_proc,
    steal_seconds,
    summary,
    wait_for_line,
)
from floor import FloorClient
from httpclient import TEXT_ACCEPT, BlockingHttp, probe_request
from measure import (
    Exporter,
    Variant,
    after_idle,
    every_call,
    interleaved,
    list_methods,
    log,
    module_calls,
    modules_config,
    probe_check,
    probe_runner,
    raw_call,
    replay_child,
    sample_count,
    source_env,
    stopping,
)
from profiles import profiled
from report import render
from wan import wan

from probe_exporter.binrpc.address import parse_address
from tests.kamailio_harness import KamailioInstance

BENCH = Path(__file__).resolve().parent
FIXTURES = ROOT / "tests" / "fixtures" / "captures"
SIBLING_BENCHMARKS = ("bench_codec.py", "bench_roundtrip.py", "bench_exposition.py")
IDLE_GAPS = (0.0, 0.001, 0.003, 0.01, 0.03)  # seconds the exporter idles before a probe

TARGETS = {
    "seed_cpu_ms": 1.5,  # issue 3: CPU per seed-set probe
    "seed_median_ms": 1.5,  # issue 3: median latency per seed-set probe
    "full_cpu_ms": 2.0,  # issue 4: CPU per full-set probe
    "fleet_cpu_percent": 15.0,  # issue 7: 1,000 targets at 15 s
    "fleet_probes_per_second": 500.0,
    "wan_ratio": 1.2,  # warm probe <= 1.2 x (RTT + floor)
    "decode_us": 150.0,  # issue 2
    "roundtrip_us": 300.0,  # issue 2
}


@dataclass
class Options:
    quick: bool
    fleet: list[int]
    interval: float
    rounds: int
    closed_seconds: float
    closed_concurrency: int
    serial: int
    block: int
    idle_probes: int
    wan_probes: int
    cold_starts: int
    profile_seconds: float
    before: Path | None = None  # the older tree for the before/after section


# -- serial probes against a real Kamailio -----------------------------------------------------


def serial_probes(options: Options, kamailio: KamailioInstance, workdir: Path) -> dict[str, Any]:
    config = modules_config([("kam-tcp", kamailio.tcp), ("kam-unix", kamailio.unix)])
    methods = list_methods(parse_address(kamailio.tcp))
    exporter = Exporter(workdir, "serial", config)
    closers: list[FloorClient | BlockingHttp] = []
    with stopping(exporter):
        try:
            exporter.wait_ready()
            variants = []
            calls_count = {}
            for module in ("seed", "default"):
                calls = module_calls(config, module, methods)
                calls_count[module] = len(calls)
                for transport in ("tcp", "unix"):
                    floor = FloorClient(parse_address(getattr(kamailio, transport)), calls)
                    http = BlockingHttp("127.0.0.1", exporter.port)
                    closers += [floor, http]
                    label = f"{'seed' if module == 'seed' else 'full'} {transport}"
                    variants.append(Variant(f"floor {label}", floor.run))
                    variants.append(
                        Variant(
                            f"probe {label}",
                            probe_runner(http, f"kam-{transport}", module),
                            exporter.pid,
                            probe_check(http, f"kam-{transport}", module),
                        )
                    )
            log(f"serial probes: {len(variants)} variants x {options.serial}")
            noise = Noise(exporter.pid, kamailio.pid)
            results = interleaved(variants, options.serial, options.block)
            others = noise.others()
            log("serial probes: again, cores kept busy")
            with busy_cores(workdir):
                results_busy = interleaved(
                    [v for v in variants if v.pid], max(options.serial // 2, 1), options.block
                )
            # The same probe arriving into an exporter idle for a while, as paced scrapes do.
            idle_http = BlockingHttp("127.0.0.1", exporter.port)
            closers.append(idle_http)
            full_tcp = probe_runner(idle_http, "kam-tcp", "default")
            minimal_tcp = probe_runner(idle_http, "kam-tcp", "minimal")
            idle_variants = [
                Variant(f"{gap * 1000:g}", after_idle(full_tcp, gap), exporter.pid)
                for gap in IDLE_GAPS
            ]
            minimal_variants = [
                Variant(f"{gap * 1000:g}", after_idle(minimal_tcp, gap), exporter.pid)
                for gap in IDLE_GAPS
            ]
            log(f"serial probes: after idle gaps of {IDLE_GAPS} s")
            block = options.idle_probes // 3
            idle = interleaved(idle_variants, options.idle_probes, block, block // 10)
            idle_minimal = interleaved(minimal_variants, options.idle_probes, block, block // 10)
            with busy_cores(workdir):
                log("serial probes: after idle gaps, cores kept busy")
                idle_busy = interleaved(idle_variants, options.idle_probes, block, block // 10)
            http = BlockingHttp("127.0.0.1", exporter.port)
            closers.append(http)

            def fetch(module: str, accept: str | None) -> tuple[bytes, int]:
                kwargs = {"accept": accept} if accept else {}
                response, _ = http.request(
                    probe_request("127.0.0.1", exporter.port, "kam-tcp", module, **kwargs)
                )
                return response.text(), len(response.body)

            full_text, _ = fetch("default", TEXT_ACCEPT)
            seed_text, _ = fetch("seed", TEXT_ACCEPT)
            _, full_gzip = fetch("default", None)
            profile = None
            if options.profile_seconds:
                log(f"serial probes: profiling {options.profile_seconds:g} s")
                profile = profiled(
                    exporter.pid, options.profile_seconds, probe_runner(http, "kam-tcp", "default")
                )
            return {
                "variants": results,
                "variants_busy_cores": results_busy,
                "others": others,
                "idle": idle,
                "idle_busy_cores": idle_busy,
                "idle_minimal": idle_minimal,
                "rpcs": calls_count,
                "floor_faults": sum(c.faults for c in closers if isinstance(c, FloorClient)),
                "samples_full": sample_count(full_text),
                "samples_seed": sample_count(seed_text),
                "bytes_full": len(full_text),
                "bytes_full_gzip": full_gzip,
                "profile": profile,
                "rss_mib": read_proc(exporter.pid).rss_mib,
            }
        finally:
            for closer in closers:
                closer.close()


class Noise:
    """How much else ran on the machine while we measured: the CPU % (100 = a core) of every
    process but the exporter, Kamailio and this one, and the hypervisor's steal time."""

    def __init__(self, exporter_pid: int, kamailio_pgid: int) -> None:
        self.exporter_pid = exporter_pid
        self.kamailio_pgid = kamailio_pgid
        self.started = time.monotonic()
        self.start = self._ours()

    def _ours(self) -> tuple[float, float, float]:
        ours = (
            read_proc(self.exporter_pid).cpu_seconds
            + group_cpu_seconds(self.kamailio_pgid)
            + time.process_time()
        )
        return machine_busy_seconds(), steal_seconds(), ours

    def others(self) -> dict[str, float]:
        busy, steal, ours = (b - a for a, b in zip(self.start, self._ours(), strict=True))
        wall = time.monotonic() - self.started
        return {
            "others_percent": 100 * max(busy - ours, 0.0) / wall,
            "steal_percent": 100 * steal / wall,
        }


@contextlib.contextmanager
def busy_cores(workdir: Path) -> Iterator[None]:
    """Every core kept busy by a loop at the lowest priority: the cores never idle (no power
    states, no giving the core back to the hypervisor), yet they run the exporter first."""
    spinners = [
        Child(
            ["nice", "-n", "19", sys.executable, "-c", "while True: pass"], workdir / "spinner.log"
        )
        for _ in range(os.cpu_count() or 1)
    ]
    with stopping(*spinners):
        yield


def idle_penalty(options: Options, captures: list[Path]) -> dict[str, Any]:
    """The machine's own idle penalty (bench/idle_penalty.py), in a process of its own."""
    log("idle penalty: the in-process work of a probe, back to back and after sleeping")
    command = [sys.executable, str(BENCH / "idle_penalty.py"), "--count", str(options.idle_probes)]
    for directory in captures:
        command += ["--captures", str(directory)]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
        check=True,
        env=source_env(),
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


# -- before/after ----------------------------------------------------------------------------


def versions_serial(
    options: Options, kamailio: KamailioInstance, workdir: Path
) -> list[dict[str, Any]]:
    """The older tree and this code, serial and paced probes in turns (bench/before_after.py),
    against the lab Kamailio and a bigger one."""
    assert options.before is not None
    big = KamailioInstance(workdir / "kamailio-big", **before_after.BIG)
    with stopping(big):
        big.start()
        return before_after.serial_rows(
            {"before": options.before, "after": None},
            kamailio,
            big,
            workdir,
            options.serial,
            options.block,
        )


def versions_fleet(options: Options, workdir: Path, captures: list[Path]) -> dict[str, Any]:
    """1,000 targets every 15 s (or the fleet run's interval), Prometheus-paced, through the
    older tree's exporter and this code's at the same time: each has its own load generator,
    both probe the same simulated Kamailios in the same window."""
    assert options.before is not None
    n = min(max(options.fleet), 1000)
    replay = replay_child(workdir, "replay-versions", n, captures, 3600)
    with stopping(replay):
        config = fleet_config(workdir, replay)
        exporters = {
            "before": Exporter(workdir, "fleet-before", config, source=options.before),
            "after": Exporter(workdir, "fleet-after", config),
        }
        with stopping(*exporters.values()):
            for exporter in exporters.values():
                exporter.wait_ready(60)
            log(f"before/after: fleet N={n}, both exporters paced at once")
            seconds = options.interval * options.rounds + 60
            loads = {
                name: subprocess.Popen(
                    loadgen_command(
                        exporter,
                        workdir,
                        n,
                        seconds - 5,
                        "paced",
                        ["--interval", str(options.interval), "--rounds", str(options.rounds)],
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for name, exporter in exporters.items()
            }
            results: dict[str, Any] = {"n": n, "interval": options.interval}
            for name, load in loads.items():
                stdout, stderr = load.communicate(timeout=seconds)
                if load.returncode != 0:
                    raise RuntimeError(f"loadgen ({name}) failed: {stderr[-2000:]}")
                results[name] = json.loads(stdout)
            return results


# -- cold start --------------------------------------------------------------------------------


def cold_start(options: Options, kamailio: KamailioInstance, workdir: Path) -> dict[str, Any]:
    config = modules_config([("kam-tcp", kamailio.tcp), ("kam-unix", kamailio.unix)])
    listening, first_probe, rss = [], [], []
    for index in range(options.cold_starts):
        exporter = Exporter(workdir, f"cold{index}", config)
        started = exporter.child.started
        with stopping(exporter):
            raw = probe_request("127.0.0.1", exporter.port, "kam-tcp", "default")
            listen_time = None
            while time.monotonic() < started + 30:
                try:
                    http = BlockingHttp("127.0.0.1", exporter.port)
                except OSError:
                    if not exporter.child.alive():
                        raise RuntimeError(exporter.child.log_tail()) from None
                    time.sleep(0.002)
                    continue
                listen_time = listen_time or time.monotonic() - started
                try:
                    response, _ = http.request(raw)
                finally:
                    http.close()
                if response.up():
                    first_probe.append(time.monotonic() - started)
                    listening.append(listen_time)
                    break
                time.sleep(0.002)
            else:
                raise RuntimeError("no successful probe within 30 s of the start")
            rss.append(read_proc(exporter.pid).rss_mib)
    return {
        "starts": options.cold_starts,
        "listening_ms": summary([x * 1000 for x in listening]),
        "first_probe_ms": summary([x * 1000 for x in first_probe]),
        "rss_after_first_probe_mib": summary(rss),
    }


# -- fleet -------------------------------------------------------------------------------------


def live_captures(kamailio: KamailioInstance, directory: Path) -> int:
    """The harness Kamailio's raw replies to system.listMethods and to every RPC of every
    collector: the replay server's replies where tests/fixtures/captures has none."""
    directory.mkdir(parents=True, exist_ok=True)
    address = parse_address(kamailio.tcp)
    calls = every_call()
    for index, (method, params) in enumerate(calls):
        request, reply = raw_call(address, method, params)
        (directory / f"live{index:02}_c2s.bin").write_bytes(request)
        (directory / f"live{index:02}_s2c.bin").write_bytes(reply)
    return len(calls)


def fleet_config(workdir: Path, replay: Child) -> str:
    """The exporter's config for every target of a replay server (named kam00000...), whose
    names also go to targets.txt for the load generator."""
    addresses = Path(wait_for_line(replay, "addresses", 120)).read_text().split()
    names = [f"kam{index:05}" for index in range(len(addresses))]
    (workdir / "targets.txt").write_text("\n".join(names) + "\n")
    pool = f"[pool]\nidle_ttl = 300.0\nmax_connections = {max(1024, 2 * len(names))}\n"
    return modules_config(list(zip(names, addresses, strict=True)), pool)


def fleet(options: Options, workdir: Path, captures: list[Path]) -> dict[str, Any]:
    largest = max(options.fleet)
    replay = replay_child(workdir, "replay", largest, captures, 3600)
    with stopping(replay):
        exporter = Exporter(workdir, "fleet", fleet_config(workdir, replay))
        with stopping(exporter):
            exporter.wait_ready(60)
            time.sleep(1.0)
            idle = read_proc(exporter.pid)
            runs = []
            rss_pooled: tuple[int, float] | None = None
            profile = paced_profile = None
            reference = min(largest, 1000)  # the fleet size the extra runs and profiles look at
            for n in sorted(options.fleet):
                log(f"fleet N={n}: paced, interval {options.interval:g} s x {options.rounds}")
                paced = loadgen(
                    exporter,
                    replay,
                    workdir,
                    n,
                    "paced",
                    ["--interval", str(options.interval), "--rounds", str(options.rounds)],
                    options.interval * options.rounds + 60,
                )
                pool_connections = exporter.self_metric("kamailio_exporter_pool_connections")
                paced_busy = None
                if n == reference:
                    log(f"fleet N={n}: paced again, cores kept busy")
                    with busy_cores(workdir):
                        paced_busy = loadgen(
                            exporter,
                            replay,
                            workdir,
                            n,
                            "paced",
                            ["--interval", str(options.interval), "--rounds", "2"],
                            options.interval * 2 + 60,
                        )
                log(f"fleet N={n}: back to back, {options.closed_seconds:g} s")
                closed = loadgen(
                    exporter,
                    replay,
                    workdir,
                    n,
                    "closed",
                    [
                        "--concurrency",
                        str(options.closed_concurrency),
                        "--duration",
                        str(options.closed_seconds),
                        "--warmup",
                        str(min(2.0, options.closed_seconds)),
                    ],
                    options.closed_seconds + 60,
                )
                after = read_proc(exporter.pid)
                runs.append(
                    {
                        "n": n,
                        "paced": paced,
                        "paced_busy_cores": paced_busy,
                        "closed": closed,
                        "pool_connections": pool_connections,
                        "sockets": after.sockets,
                        "rss_mib": after.rss_mib,
                    }
                )
                if n <= 1000:
                    rss_pooled = (n, after.rss_mib)
                if options.profile_seconds and n == reference:
                    log(
                        f"fleet N={n}: profiling {options.profile_seconds:g} s, back to back "
                        "then paced"
                    )
                    profile = profile_fleet(exporter, workdir, n, options)
                    paced_profile = profile_paced(exporter, workdir, n, options)
            return {
                "replies": {
                    "fixtures": len(list(FIXTURES.glob("*_s2c.bin"))),
                    "live": len(list(captures[0].glob("*_s2c.bin"))),
                },
                "runs": runs,
                "rss_idle_mib": idle.rss_mib,
                "rss_pooled": rss_pooled,
                "rss_after_mib": read_proc(exporter.pid).rss_mib,
                "profile": profile,
                "paced_profile": paced_profile,
                "config_targets": largest,
            }


def loadgen_command(
    exporter: Exporter, workdir: Path, n: int, seconds: float, mode: str, mode_args: list[str]
) -> list[str]:
    return [
        sys.executable,
        str(BENCH / "loadgen.py"),
        "--port",
        str(exporter.port),
        "--exporter-pid",
        str(exporter.pid),
        "--targets-file",
        str(workdir / "targets.txt"),
        "--count",
        str(n),
        "--max-seconds",
        str(seconds),
        mode,
        *mode_args,
    ]


def loadgen(
    exporter: Exporter,
    replay: Child,
    workdir: Path,
    n: int,
    mode: str,
    mode_args: list[str],
    timeout: float,
) -> dict[str, Any]:
    command = loadgen_command(exporter, workdir, n, timeout - 5, mode, mode_args)
    replay_before = read_proc(replay.pid).cpu_seconds
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"loadgen failed: {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    # Over the whole load generator run, warm-up included: the simulated fleet's own share.
    result["replay_cpu_percent"] = (
        100 * (read_proc(replay.pid).cpu_seconds - replay_before) / (time.monotonic() - started)
    )
    return result


def profile_fleet(exporter: Exporter, workdir: Path, n: int, options: Options) -> dict[str, Any]:
    command = loadgen_command(
        exporter,
        workdir,
        n,
        options.profile_seconds + 30,
        "closed",
        [
            "--concurrency",
            str(options.closed_concurrency),
            "--duration",
            str(options.profile_seconds + 1),
            "--warmup",
            "0.5",
        ],
    )
    return profiled_under(exporter, command, 0.5, options.profile_seconds)


def profile_paced(exporter: Exporter, workdir: Path, n: int, options: Options) -> dict[str, Any]:
    """Probes spaced as N targets every interval are (15 ms apart for 1,000 every 15 s), from
    a slice of the targets in short rounds, so that the window fits the profile."""
    spacing = options.interval / n
    count = max(int(options.profile_seconds / 4 / spacing), 1)  # rounds of a quarter window
    interval = count * spacing
    rounds = int((options.profile_seconds + 2) / interval) + 2
    command = loadgen_command(
        exporter,
        workdir,
        count,
        interval * rounds + 30,
        "paced",
        ["--interval", f"{interval:g}", "--rounds", str(rounds)],
    )
    profile = profiled_under(exporter, command, interval + 0.5, options.profile_seconds)
    profile["paced_as"] = {"targets": n, "interval": options.interval, "spacing": spacing}
    return profile


def profiled_under(
    exporter: Exporter, load_command: list[str], settle: float, seconds: float
) -> dict[str, Any]:
    """py-spy samples of the exporter while the load generator runs `load_command`."""
    load = subprocess.Popen(load_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        return profiled(exporter.pid, seconds)
    finally:
        try:
            load.wait(timeout=seconds + 60)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()


# -- sibling benchmarks ------------------------------------------------------------------------


def sibling_benchmarks(options: Options) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for script in SIBLING_BENCHMARKS:
        path = BENCH / script
        if not path.exists():
            results.append({"script": script, "status": "not present"})
            continue
        if options.quick:
            results.append({"script": script, "status": "skipped (--quick)"})
            continue
        log(f"running bench/{script}")
        started = time.monotonic()
        try:
            completed = subprocess.run(
                [sys.executable, str(path)],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=ROOT,
                env=source_env(),
            )
        except subprocess.TimeoutExpired:
            results.append({"script": script, "status": "timed out after 600 s"})
            continue
        output = completed.stdout.strip()
        if completed.returncode:
            output += "\n" + completed.stderr.strip()[-2000:]
        results.append(
            {
                "script": script,
                "status": "ok" if completed.returncode == 0 else f"exit {completed.returncode}",
                "seconds": time.monotonic() - started,
                "output": output,
            }
        )
    return results


# -- the run -----------------------------------------------------------------------------------


def run(options: Options, command: str) -> dict[str, Any]:
    raise_fd_limit()
    results: dict[str, Any] = {
        "generated": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "quick": options.quick,
        "command": command,
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    workdir = Path(tempfile.mkdtemp(prefix="kpe-bench-"))
    live = workdir / "live-captures"
    captures = [live, FIXTURES]  # the fixtures win where both have a reply
    try:
        kamailio = KamailioInstance(workdir / "kamailio")
        try:
            kamailio.start()
            log(f"Kamailio {kamailio.pid} on {kamailio.tcp} and {kamailio.unix}")
            live_captures(kamailio, live)
            results["serial"] = serial_probes(options, kamailio, workdir)
            if options.before is not None:
                results["before_after"] = {
                    "before_commit": subprocess.run(
                        ["git", "-C", str(options.before), "rev-parse", "--short", "HEAD"],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.strip(),
                    "serial": versions_serial(options, kamailio, workdir),
                }
            results["idle_penalty"] = idle_penalty(options, captures)
            results["cold"] = cold_start(options, kamailio, workdir)
        finally:
            kamailio.stop()
        results["wan"] = wan(options.wan_probes, workdir, captures)
        results["fleet"] = fleet(options, workdir, captures)
        if options.before is not None:
            results["before_after"]["fleet"] = versions_fleet(options, workdir, captures)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["siblings"] = sibling_benchmarks(options)
    results["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, to check that everything runs (figures mean little)",
    )
    parser.add_argument("--fleet", default=None, help="comma-separated N (100,1000,5000)")
    parser.add_argument("--interval", type=float, default=None, help="seconds (15)")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an older tree (git worktree add DIR COMMIT): the before/after section",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="the tree every exporter of the run imports (scripts/bench.sh: the compiled copy)",
    )
    args = parser.parse_args()
    quick = args.quick
    options = Options(
        quick=quick,
        fleet=(
            [int(x) for x in args.fleet.split(",")]
            if args.fleet
            else [5, 20]
            if quick
            else [100, 1000, 5000]
        ),
        interval=args.interval or (0.5 if quick else 15.0),
        rounds=2 if quick else 3,
        closed_seconds=0.5 if quick else 10.0,
        closed_concurrency=8 if quick else 32,
        serial=20 if quick else 2000,
        block=10 if quick else 100,
        idle_probes=10 if quick else 300,
        wan_probes=2 if quick else 40,
        cold_starts=1 if quick else 5,
        profile_seconds=1.0 if quick else 8.0,
        before=args.before,
    )
    Exporter.default_source = args.source
    # What changes the figures (not where they are written) names the run.
    flags = ["--quick"] if args.quick else []
    flags += [f"--fleet {args.fleet}"] if args.fleet else []
    flags += [f"--interval {args.interval:g}"] if args.interval else []
    results = run(options, " ".join(["./scripts/bench.sh", *flags]))
    args.output.write_text(render(results, TARGETS))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
