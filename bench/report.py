"""BENCHMARKS.md from the figures of one bench/run_all.py run."""

from __future__ import annotations

import math
import re
from typing import Any

from measure import MINIMAL_COLLECTORS

NA = "n/a"


def ms(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    return f"{value:.{digits}f}"


def verdict(measured: float | None, goal: float, *, at_most: bool = True) -> str:
    if measured is None or math.isnan(measured):
        return "not measured"
    return "met" if (measured <= goal if at_most else measured >= goal) else "**missed**"


def times(value: float | None, base: float | None) -> str:
    """`value` as a multiple of `base`."""
    if not value or not base or math.isnan(value) or math.isnan(base):
        return NA
    return f"x{value / base:.2f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def sibling_figure(results: dict[str, Any], script: str, pattern: str) -> float | None:
    for sibling in results.get("siblings", []):
        if sibling["script"] != script or "output" not in sibling:
            continue
        for line in sibling["output"].splitlines():
            if re.search(pattern, line, re.IGNORECASE):
                match = re.search(r"median\s+([\d.]+)\s*us", line)
                if match:
                    return float(match.group(1))
    return None


def targets_section(results: dict[str, Any], goals: dict[str, float]) -> list[str]:
    serial_results = results["serial"]
    serial = serial_results["variants"]
    seed, full = serial["probe seed tcp"], serial["probe full tcp"]
    fleet_runs = results["fleet"]["runs"]
    paced_1000 = next(
        (r["paced"] for r in fleet_runs if r["n"] == 1000 and r["paced"]["interval"] == 15.0), None
    )
    rates = [(r["n"], r["closed"]["probes_per_second"]) for r in fleet_runs]
    rate_text = ", ".join(f"{rate:.0f}/s at {n:,}" for n, rate in rates)
    missed_at = [f"{n:,}" for n, rate in rates if rate < goals["fleet_probes_per_second"]]
    rate_verdict = (
        "met"
        if not missed_at
        else f"**missed** at {', '.join(missed_at)} targets"
        if len(missed_at) < len(rates)
        else "**missed**"
    )
    wan = results["wan"]["variants"]
    wan_rows = []
    for label in ("seed", "full"):
        floor = wan[f"floor {label}"]["median"]
        probe = wan[f"probe {label} pooled"]["median"]
        ratio = probe / floor
        wan_rows.append(
            [
                f"WAN warm probe, {label} set: median / (RTT + floor)",
                f"<= {goals['wan_ratio']}",
                f"{ratio:.3f} ({ms(probe, 1)} ms / {ms(floor, 1)} ms)",
                verdict(ratio, goals["wan_ratio"]),
            ]
        )
    decode = sibling_figure(results, "bench_codec.py", r"decode stats\.fetch all")
    roundtrip = sibling_figure(
        results, "bench_roundtrip.py", r"^tcp: stats\.fetch all \(round trip"
    )
    roundtrip_floor = sibling_figure(
        results, "bench_roundtrip.py", r"^tcp: stats\.fetch all \(floor"
    )
    floor_text = f" (bare socket: {ms(roundtrip_floor, 1)} us)" if roundtrip_floor else ""
    rows = [
        [
            "Seed RPC set, serial /probe (gzip), CPU per probe",
            f"<= {goals['seed_cpu_ms']} ms",
            f"{ms(seed['cpu_ms_per_probe'], 3)} ms",
            verdict(seed["cpu_ms_per_probe"], goals["seed_cpu_ms"]),
        ],
        [
            "Seed RPC set, serial /probe (gzip), median latency",
            f"<= {goals['seed_median_ms']} ms",
            f"{ms(seed['median'], 3)} ms",
            verdict(seed["median"], goals["seed_median_ms"]),
        ],
        [
            "Full set, serial /probe, CPU per probe",
            f"<= {goals['full_cpu_ms']} ms",
            f"{ms(full['cpu_ms_per_probe'], 3)} ms",
            verdict(full["cpu_ms_per_probe"], goals["full_cpu_ms"]),
        ],
        [
            "1,000 targets every 15 s: exporter CPU",
            f"< {goals['fleet_cpu_percent']:g} % of a core",
            f"{ms(paced_1000['cpu_percent'], 1)} %" if paced_1000 else "not run",
            verdict(paced_1000["cpu_percent"], goals["fleet_cpu_percent"])
            if paced_1000
            else "not measured",
        ],
        [
            "Full-set probes per second, one process (back to back)",
            f">= {goals['fleet_probes_per_second']:g}",
            rate_text,
            rate_verdict,
        ],
        *wan_rows,
        [
            "Decode `stats.fetch all` reply (bench_codec.py), median",
            f"<= {goals['decode_us']:g} us",
            f"{ms(decode, 1)} us" if decode is not None else "not run",
            verdict(decode, goals["decode_us"]),
        ],
        [
            "Round trip + decode on TCP (bench_roundtrip.py), median",
            f"<= {goals['roundtrip_us']:g} us",
            f"{ms(roundtrip, 1)} us{floor_text}" if roundtrip is not None else "not run",
            verdict(roundtrip, goals["roundtrip_us"]),
        ],
    ]
    lines = ["## Targets", "", *table(["what", "target", "measured", ""], rows)]
    if full["cpu_ms_per_probe"] > goals["full_cpu_ms"]:
        unix = serial["probe full unix"]["cpu_ms_per_probe"]
        full_busy = serial_results.get("variants_busy_cores", {}).get("probe full tcp")
        full_busy_text = (
            f"; {ms(full_busy['cpu_ms_per_probe'], 2)} ms over TCP with the cores kept busy"
            if full_busy
            else ""
        )
        lines += [
            f"**Full set.** {ms(full['cpu_ms_per_probe'], 2)} ms of CPU per probe over TCP, "
            f"{ms(unix, 2)} ms over the unix socket{full_busy_text}. The time is spread over "
            "decoding, the collectors and rendering (profiles below), each a tuned loop on its "
            "own (bench_codec.py, bench_exposition.py below); serial probes leave the cores idle "
            "for a moment between them, and this machine charges idling (the tables after the "
            "serial figures).",
            "",
        ]
    if paced_1000 and paced_1000["cpu_percent"] >= goals["fleet_cpu_percent"]:
        run_1000 = next(r for r in fleet_runs if r["n"] == 1000)
        warm = run_1000["closed"]["cpu_ms_per_probe"]
        penalty = results.get("idle_penalty", {}).get("15")
        machine_penalty = (
            f" (x{penalty['ratio']:.2f} after 15 ms against the paced probes' "
            f"x{paced_1000['cpu_ms_per_probe'] / warm:.2f})"
            if penalty
            else ""
        )
        minimal = serial_results["idle_minimal"]
        longest = list(minimal)[-1]
        paced_busy = run_1000.get("paced_busy_cores")
        busy_text = (
            " With every core kept busy by a loop at nice 19 during the same paced load (the "
            f"cores never idle), the exporter used {ms(paced_busy['cpu_percent'], 1)} % of a "
            f"core ({ms(paced_busy['cpu_ms_per_probe'], 2)} ms per probe)."
            if paced_busy
            else ""
        )
        lines += [
            "**1,000 targets every 15 s.** Paced, each probe cost the exporter "
            f"{ms(paced_1000['cpu_ms_per_probe'], 2)} ms of CPU; back to back, the same probes "
            f"cost {ms(warm, 2)} ms, which at {paced_1000['offered_per_second']:.1f} probes/s "
            f"would be {paced_1000['offered_per_second'] * warm / 10:.1f} % of a core. The "
            "difference is the idle time between paced probes: the tables after the serial "
            "figures show the CPU time of one and the same probe growing with the time the "
            "exporter idled before it, whether the cores idle meanwhile or run other work, "
            f"and the same growth{machine_penalty} for the probe's in-process work alone, with "
            "no I/O: a property of this machine. The fixed part of a probe (the HTTP request, "
            "the event loop, the pool, one BINRPC round trip: a minimal probe) grows most: "
            f"{ms(minimal['0']['cpu_ms_per_probe'], 2)} ms back to back, "
            f"{ms(minimal[longest]['cpu_ms_per_probe'], 2)} ms after {longest} ms idle. Where "
            "the time goes inside the exporter is in the profiles, the paced one last." + busy_text,
            "",
        ]
    return lines


def siblings_section(results: dict[str, Any]) -> list[str]:
    lines = ["## Codec, round trip and exposition (bench/bench_*.py, their own output)", ""]
    for sibling in results["siblings"]:
        lines.append(
            f"`bench/{sibling['script']}`: {sibling['status']}"
            + (f" ({sibling['seconds']:.0f} s)" if "seconds" in sibling else "")
        )
        lines.append("")
        if sibling.get("output"):
            lines += ["```", sibling["output"], "```", ""]
    return lines


def idle_lines(serial: dict[str, Any]) -> list[str]:
    idle, spun, minimal = serial["idle"], serial["idle_busy_cores"], serial["idle_minimal"]
    busy = idle["0"]["cpu_ms_per_probe"]
    spun_busy = spun["0"]["cpu_ms_per_probe"]
    minimal_busy = minimal["0"]["cpu_ms_per_probe"]
    rows = [
        [
            f"{gap} ms",
            ms(stats["cpu_ms_per_probe"], 3),
            times(stats["cpu_ms_per_probe"], busy),
            ms(stats["median"], 3),
            ms(spun[gap]["cpu_ms_per_probe"], 3),
            times(spun[gap]["cpu_ms_per_probe"], spun_busy),
            ms(minimal[gap]["cpu_ms_per_probe"], 3),
            times(minimal[gap]["cpu_ms_per_probe"], minimal_busy),
        ]
        for gap, stats in idle.items()
    ]
    return [
        "The same full-set tcp probe after the exporter idled for a while, as paced scrapes "
        f"arrive; {idle['0']['n']} probes per row, rows taking turns in blocks, each block "
        "opened by a few unmeasured probes (so that back to back starts warm). Then again "
        "with every core kept busy meanwhile by a loop at nice 19 (the cores never idle, but "
        "other work runs on them between probes). The last two columns: a minimal probe (module "
        f"`minimal`: {', '.join(MINIMAL_COLLECTORS)}, one small RPC), the cost every probe "
        "pays whatever its collectors: the HTTP request and response, the event loop, the "
        "pool and one BINRPC round trip.",
        "",
        *table(
            [
                "idle before each probe",
                "exporter CPU/probe",
                "vs back to back",
                "median latency",
                "CPU/probe, cores busy",
                "vs back to back",
                "minimal probe CPU",
                "vs back to back",
            ],
            rows,
        ),
    ]


def idle_penalty_lines(results: dict[str, Any]) -> list[str]:
    penalty = results.get("idle_penalty")
    if not penalty:
        return []
    rows = [
        [f"{sleep} ms", f"{figures['cpu_us']:.0f}", f"x{figures['ratio']:.2f}"]
        for sleep, figures in penalty.items()
    ]
    return [
        "The machine's own idle penalty (`bench/idle_penalty.py`): the in-process part of a "
        "full-set probe (decode the captured replies, every collector, render OpenMetrics, "
        "gzip), with no socket, no event loop and no other process, timed by the thread's CPU "
        f"clock, back to back and after sleeping; {penalty['0']['n']} runs per row, rows "
        "taking turns. The same code costs more CPU after the process slept: the exporter's "
        "paced probes pay this, whatever it does.",
        "",
        *table(["sleep before each run", "CPU us/run", "vs back to back"], rows),
    ]


def serial_section(results: dict[str, Any]) -> list[str]:
    serial = results["serial"]
    variants = serial["variants"]
    busy = serial.get("variants_busy_cores", {})
    rows = []
    for kind in ("seed", "full"):
        rpcs = serial["rpcs"]["seed" if kind == "seed" else "default"]
        for transport in ("tcp", "unix"):
            floor = variants[f"floor {kind} {transport}"]
            probe = variants[f"probe {kind} {transport}"]
            rows.append(
                [
                    f"{kind} set, {transport}",
                    str(rpcs),
                    ms(floor["median"], 3),
                    ms(floor["p99"], 3),
                    ms(probe["median"], 3),
                    ms(probe["p99"], 3),
                    f"{probe['median'] / floor['median']:.2f}",
                    f"+{ms(probe['median'] - floor['median'], 3)}",
                    ms(probe["cpu_ms_per_probe"], 3),
                    ms(busy[f"probe {kind} {transport}"]["cpu_ms_per_probe"], 3) if busy else NA,
                ]
            )
    n = variants["probe seed tcp"]["n"]
    return [
        "## Serial /probe against a real Kamailio, and the floor",
        "",
        f"{n} probes per row, one at a time, in blocks of the variants taking turns. The probe is "
        "a GET /probe with Prometheus' headers (OpenMetrics preferred, gzip) on a keep-alive "
        "connection; the floor sends the same RPCs pipelined on one persistent socket and "
        "reads the replies without decoding them. Seed set: `stats.fetch all`, `pkg.stats`, "
        "`core.tcp_info`, `rtpengine.show all` (module with collectors stats, pkg, tcp_info, "
        "rtpengine). Full set: every collector whose RPCs this Kamailio offers. Exporter CPU "
        "per probe: its user+system time from /proc/PID/stat over the probe blocks, divided "
        "by their probe count; in the last column, the probes again (half as many) with every "
        "core kept busy by a loop at nice 19, so that the cores never idle between probes. "
        "Times in ms.",
        "",
        *table(
            [
                "",
                "RPCs",
                "floor median",
                "floor p99",
                "probe median",
                "probe p99",
                "ratio",
                "overhead",
                "exporter CPU/probe",
                "CPU/probe, cores busy",
            ],
            rows,
        ),
        f"Other work on the machine meanwhile: {serial['others']['others_percent']:.0f} % of a "
        f"core; steal time: {serial['others']['steal_percent']:.0f} %.",
        "",
        *idle_lines(serial),
        *idle_penalty_lines(results),
        f"Full-set probe output: {serial['samples_full']} samples "
        f"({serial['bytes_full']} bytes as text, {serial['bytes_full_gzip']} bytes "
        f"gzipped OpenMetrics); seed set: {serial['samples_seed']} samples. Faults seen by "
        f"the floor client: {serial['floor_faults']}. Exporter RSS after these probes: "
        f"{serial['rss_mib']:.1f} MiB.",
        "",
    ]


def others(run: dict[str, Any]) -> str:
    """CPU % of everything else on the machine during the window (noise from outside)."""
    rest = (
        run["machine_cpu_percent"]
        - run["cpu_percent"]
        - run["loadgen_cpu_percent"]
        - run["replay_cpu_percent"]
    )
    return f"{max(rest, 0.0):.0f}"


def fleet_section(results: dict[str, Any]) -> list[str]:
    fleet = results["fleet"]
    paced_rows, closed_rows = [], []
    for run in fleet["runs"]:
        paced, closed = run["paced"], run["closed"]
        paced_rows.append(
            [
                f"{run['n']:,}",
                f"{paced['interval']:g} s",
                f"{paced['offered_per_second']:.1f}",
                f"{paced['probes_per_second']:.1f}",
                f"{paced['cpu_percent']:.1f}",
                ms(paced["cpu_ms_per_probe"], 3),
                ms(paced["latency_ms"]["median"]),
                ms(paced["latency_ms"]["p99"]),
                ms(paced["lateness_ms"]["p99"]),
                f"{paced['up']}/{paced['probes']}",
                str(paced["overload"]),
                f"{run['pool_connections']:.0f}" if run["pool_connections"] is not None else NA,
                str(paced["sockets_after"]),
                f"{paced['rss_mib_after']:.1f}",
                f"{paced['loadgen_cpu_percent']:.0f} / {paced['replay_cpu_percent']:.0f} / "
                f"{others(paced)}",
            ]
        )
        closed_rows.append(
            [
                f"{run['n']:,}",
                str(closed["concurrency"]),
                f"{closed['probes_per_second']:.0f}",
                f"{closed['cpu_percent']:.0f}",
                ms(closed["cpu_ms_per_probe"], 3),
                ms(closed["latency_ms"]["median"]),
                ms(closed["latency_ms"]["p99"]),
                f"{closed['up']}/{closed['probes']}",
                str(closed["overload"]),
                f"{run['rss_mib']:.1f}",
                f"{closed['loadgen_cpu_percent']:.0f} / {closed['replay_cpu_percent']:.0f} / "
                f"{others(closed)}",
            ]
        )
    replies = fleet["replies"]
    return [
        "## Fleet throughput (one exporter process, simulated Kamailios)",
        "",
        f"`bench/replay_server.py` serves every target from one asyncio process, each on its "
        f"own 127.0.0.1 TCP port, answering with captured replies: the {replies['fixtures']} "
        "replies of `tests/fixtures/captures/` (`stats.fetch all`, `pkg.stats`, "
        "`dispatcher.list`, ...) and, for the RPCs they lack, the harness Kamailio's replies "
        f"recorded at the start of the run ({replies['live']} requests). The exporter lists "
        f"all {fleet['config_targets']:,} targets in its config (module `default`: every "
        "collector) and pools one connection per target. `bench/loadgen.py` runs in its own "
        "process and sends Prometheus' headers (OpenMetrics, gzip, scrape timeout).",
        "",
        "**Prometheus-paced**: every target once per interval, target i at offset i x "
        "interval / N; the first interval (connections opening) is not measured, the next "
        "ones are. CPU % = exporter CPU time / wall time of the measured intervals (100 = one "
        "core). Lateness: how late the load generator sent a probe (it kept up when small). "
        "`up`: probes answered with `kamailio_up 1` / probes sent; `503s`: probes refused "
        "at once above `--probe.max-concurrent` (256). "
        "The last column is the CPU % of the load generator / the replay server / everything "
        "else on the machine (other work sharing the cores) in the same window. Latencies "
        "in ms.",
        "",
        *table(
            [
                "targets",
                "interval",
                "offered/s",
                "probes/s",
                "exporter CPU %",
                "CPU ms/probe",
                "p50",
                "p99",
                "lateness p99",
                "up",
                "503s",
                "pool conns",
                "exporter sockets",
                "RSS MiB",
                "loadgen / replay / others CPU %",
            ],
            paced_rows,
        ),
        "**Back to back** (the most one process sustains): a fixed number of requests in "
        "flight, the targets in turn, after a short warm-up. Latencies in ms.",
        "",
        *table(
            [
                "targets",
                "in flight",
                "probes/s",
                "exporter CPU %",
                "CPU ms/probe",
                "p50",
                "p99",
                "up",
                "503s",
                "RSS MiB",
                "loadgen / replay / others CPU %",
            ],
            closed_rows,
        ),
    ]


def wan_section(results: dict[str, Any]) -> list[str]:
    wan = results["wan"]
    feasibility = wan["feasibility"]
    rows = [
        [
            name,
            str(stats["n"]),
            ms(stats["median"], 1),
            ms(stats["p99"], 1),
            ms(stats.get("cpu_ms_per_probe"), 3),
        ]
        for name, stats in wan["variants"].items()
    ]
    if wan["netem"]:
        how = f"The link: {wan['method']}."
    else:
        how = (
            f"`tc netem` is not available on this machine: {feasibility['error']} "
            f"(network namespaces {'work' if feasibility['netns'] else 'do not work'}, "
            f"veth pairs {'work' if feasibility['veth'] else 'do not'}). The link is a "
            f"{wan['method']}."
        )
    delay = wan["delay_ms"]
    return [
        f"## WAN: {delay:g} ms each way (RTT {2 * delay:g} ms)",
        "",
        how,
        "",
        "The far end is `bench/replay_server.py` with one target (the fleet's replies). "
        "The delay is between the exporter and that Kamailio only; Prometheus and the "
        "exporter talk over loopback. `floor` = the floor client through the same link: RTT + "
        "the server's time. `probe ... pooled` = /probe on a warm pooled connection, every RPC "
        "in one pipelined batch. `new connection + sequential` = connect, then one RPC at a "
        "time, each waiting for its reply, then close: what the older exporters do on every "
        "scrape. `probe full new connection` = /probe with nothing pooled (an exporter with "
        "`--pool.idle-ttl 0.05`): connect, then system.listMethods pipelined with the RPCs. "
        "Times in ms.",
        "",
        *table(["", "n", "median", "p99", "exporter CPU/probe"], rows),
    ]


def cold_section(results: dict[str, Any]) -> list[str]:
    cold = results["cold"]
    fleet = results["fleet"]
    pooled = fleet["rss_pooled"]
    largest = max(r["n"] for r in fleet["runs"])
    rows = [
        ["process start to HTTP listening", f"{ms(cold['listening_ms']['median'], 0)} ms"],
        [
            "process start to first successful full-set probe",
            f"{ms(cold['first_probe_ms']['median'], 0)} ms (p99 of "
            f"{cold['starts']}: {ms(cold['first_probe_ms']['p99'], 0)} ms)",
        ],
        [
            "RSS after the first probe (2 targets configured)",
            f"{cold['rss_after_first_probe_mib']['median']:.1f} MiB",
        ],
        [
            f"RSS idle, {fleet['config_targets']:,} targets configured",
            f"{fleet['rss_idle_mib']:.1f} MiB",
        ],
        [
            f"RSS after {pooled[0]:,} targets pooled" if pooled else "RSS pooled",
            f"{pooled[1]:.1f} MiB" if pooled else NA,
        ],
        [
            f"RSS after the fleet run ({largest:,} targets pooled)",
            f"{fleet['rss_after_mib']:.1f} MiB",
        ],
    ]
    return ["## Cold start and memory", "", *table(["", ""], rows)]


def profile_lines(title: str, profile: dict[str, Any] | None) -> list[str]:
    if profile is None:
        return []
    if "error" in profile:
        return [f"### {title}", "", f"Not profiled: {profile['error']}", ""]
    rows = [[f"{share:.1f} %", f"`{name}`"] for name, share in profile["self"]]
    inclusive = [[f"{share:.1f} %", f"`{name}`"] for name, share in profile["inclusive"]]
    return [
        f"### {title}",
        "",
        f"{profile['samples']} samples.",
        "",
        "Own time (the function itself):",
        "",
        *table(["share", "function"], rows),
        "Inclusive time (the function and what it calls):",
        "",
        *table(["share", "function"], inclusive),
    ]


# Issue 16: half the Go exporter's CPU and latency per scrape. (row, figure) -> target.
BEFORE_AFTER_TARGETS = {
    ("seed set, serial", "cpu_ms_per_probe"): 0.5,
    ("full set, serial", "cpu_ms_per_probe"): 0.8,
    ("full set, serial", "median"): 1.0,
    ("full set, paced: 10 ms idle before each", "cpu_ms_per_probe"): 1.4,
    ("full set, paced: 30 ms idle before each", "cpu_ms_per_probe"): 1.4,
}
FLEET_CPU_TARGET = 10.0


def before_after_section(results: dict[str, Any]) -> list[str]:
    versions = results.get("before_after")
    if not versions:
        return []
    rows = []
    for row in versions["serial"]:
        before, after = row["versions"]["before"], row["versions"]["after"]
        for figure, label in (("cpu_ms_per_probe", "CPU/probe"), ("median", "median latency")):
            goal = BEFORE_AFTER_TARGETS.get((row["row"], figure))
            rows.append(
                [
                    f"{row['row']}: {label}",
                    ms(before[figure], 3),
                    ms(after[figure], 3),
                    times(after[figure], before[figure]),
                    f"<= {goal}" if goal else "",
                    verdict(after[figure], goal) if goal else "",
                ]
            )
    fleet = versions.get("fleet")
    if fleet:
        before, after = fleet["before"], fleet["after"]
        name = f"{fleet['n']:,} targets every {fleet['interval']:g} s, paced"
        rows.append(
            [
                f"{name}: exporter CPU % of a core",
                f"{before['cpu_percent']:.1f}",
                f"{after['cpu_percent']:.1f}",
                times(after["cpu_percent"], before["cpu_percent"]),
                f"<= {FLEET_CPU_TARGET:g}",
                verdict(after["cpu_percent"], FLEET_CPU_TARGET),
            ]
        )
        for figure, label in (("cpu_ms_per_probe", "CPU/probe"),):
            rows.append(
                [
                    f"{name}: {label}",
                    ms(before[figure], 3),
                    ms(after[figure], 3),
                    times(after[figure], before[figure]),
                    "",
                    "",
                ]
            )
        rows.append(
            [
                f"{name}: median latency",
                ms(before["latency_ms"]["median"], 3),
                ms(after["latency_ms"]["median"], 3),
                times(after["latency_ms"]["median"], before["latency_ms"]["median"]),
                "",
                "",
            ]
        )
    return [
        "## Before and after",
        "",
        f"`before`: the exporter at commit {versions['before_commit']} (pure Python, as it "
        "shipped); `after`: this code as wheels and the image carry it, with the modules "
        "setup.py compiles with mypyc. Both run at once, each its own process, probing the "
        "same Kamailios; in the serial and paced rows the two take turns in blocks "
        f"({versions['serial'][0]['versions']['after']['n']} probes each per serial row, a "
        "quarter as many per paced row, each block opened by a few unmeasured probes); in "
        "the fleet row each has its own load generator, both in the same window. The lab "
        "Kamailio is the serial section's (2 SIP children, 2 dispatcher destinations); the "
        "bigger one has 5 SIP children (more `pkg.stats` entries) and 3 dispatcher "
        "destinations. Times in ms; targets are issue 16's.",
        "",
        *table(["", "before", "after", "after / before", "target", ""], rows),
        "",
    ]


def render(results: dict[str, Any], goals: dict[str, float]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{results['command']}` on {results['generated']}; regenerate with the "
        "same command, do not edit by hand. Every figure below comes from that one run: "
        "ratios compare variants measured side by side, in turns, on the same machine.",
        "",
    ]
    if results["quick"]:
        lines += [
            "**Quick run** (tiny sizes, to check that the benchmark works): these "
            "figures mean little.",
            "",
        ]
    lines += [
        "## Machine",
        "",
        *table(
            ["", ""],
            [
                ["CPU", m["cpu"]],
                ["cores", m["cores"]],
                ["memory", m["memory"]],
                ["kernel", m["kernel"]],
                ["Python", m["python"]],
                ["Kamailio", m["kamailio"]],
            ],
        ),
        f"{m['cores']} cores shared by everything in the run: the exporter, "
        "Kamailio or the replay server, the load generator, and whatever else runs on the "
        f"machine (load average {' '.join(results['load_before'])} before the run, "
        f"{' '.join(results['load_after'])} after). Absolute times move from run to run; "
        "the ratios, measured side by side, are steadier, and CPU time per probe counts the "
        "exporter's own work whatever else runs.",
        "",
    ]
    lines += before_after_section(results)
    lines += targets_section(results, goals)
    lines += serial_section(results)
    lines += fleet_section(results)
    lines += wan_section(results)
    lines += cold_section(results)
    lines += [
        "## Profiles (py-spy, of the exporter process)",
        "",
        "Sampled with `py-spy --gil --native`: Python code and the C functions under it "
        "(the cyclic GC shows as `gc_collect_main`); what runs without the GIL (waiting "
        "for the network, socket writes, zlib compressing the response) is left out.",
        "",
    ]
    lines += profile_lines(
        "Serial full-set probes against the real Kamailio", results["serial"].get("profile")
    )
    lines += profile_lines("Fleet, back to back", results["fleet"].get("profile"))
    paced = results["fleet"].get("paced_profile")
    if paced and "paced_as" in paced:
        spaced = paced["paced_as"]
        lines += profile_lines(
            f"Fleet, paced as {spaced['targets']:,} targets every {spaced['interval']:g} s "
            f"(a probe every {spaced['spacing'] * 1000:.3g} ms)",
            paced,
        )
    lines += siblings_section(results)
    return "\n".join(lines).rstrip() + "\n"
