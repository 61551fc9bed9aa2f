"""Instructions per probe, counted by valgrind (callgrind): two versions side by side, steady
where this machine's timings are not.

CPU time per probe moves by half from one hour to the next on a shared machine, and a change of
a few per cent is lost in it. The number of instructions a probe executes does not move: the
same code runs the same instructions (0.03 % apart between two runs of one version). What it
leaves out, cache misses and the machine's idle penalty, the serial and paced rows of
BENCHMARKS.md measure; this is the tool for deciding, change by change, what to keep.

Each version runs the service in process (Exporter.probe, no HTTP) against one real Kamailio
(tests/kamailio_harness.py), under callgrind, twice: `--warm` probes, then `--warm` + `--count`
probes; the difference divided by `--count` is one probe's instructions, imports and start-up
left out. A run takes about 25 s per version and module.

    .venv/bin/python bench/instructions.py --before DIR [--after DIR] [--modules default,seed]

DIR is a tree whose probe_exporter runs (an older commit: `git worktree add DIR COMMIT`; a
compiled copy: scripts/build-compiled.sh DIR); `--after` defaults to this tree as it is (the
venv's Python: pure unless compiled in place). Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"


async def _probe_loop(config: Path, module: str, count: int) -> None:
    """The worker: `count` probes of the target `lab` with `module`, one after the other."""
    from probe_exporter.service import Exporter, Settings

    exporter = await Exporter.start(Settings(config_file=str(config)))
    try:
        for _ in range(count):
            answer = await exporter.probe("lab", module, "5", False, accept=ACCEPT)
            if answer.refused is not None:
                raise SystemExit(f"probe refused: {answer.message}")
    finally:
        await exporter.stop()


def _instructions(source: Path, config: Path, module: str, count: int) -> int:
    """Instructions callgrind counts for a worker process running `count` probes."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-P",  # the version's tree first on sys.path, not this checkout
        __file__,
        "--worker",
        str(config),
        module,
        str(count),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(source), str(ROOT / "bench")))}
    env["PYTHONHASHSEED"] = "0"  # the same hashes, so the same dict probing, in every run
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), check=False
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the older tree")
    parser.add_argument("--after", type=Path, default=ROOT, help="this tree when not given")
    parser.add_argument("--modules", default="minimal,seed,default")
    parser.add_argument("--warm", type=int, default=20, help="probes before those counted")
    parser.add_argument("--count", type=int, default=100, help="probes counted")
    parser.add_argument("--worker", nargs=3, metavar=("CONFIG", "MODULE", "COUNT"))
    args = parser.parse_args()
    if args.worker:
        config, module, count = args.worker
        asyncio.run(_probe_loop(Path(config), module, int(count)))
        return
    if args.before is None:
        parser.error("--before is required")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind)")

    # Only here, not in the worker, which imports nothing but the version's probe_exporter.
    from measure import modules_config

    sys.path.insert(0, str(ROOT))
    from tests.kamailio_harness import KamailioInstance

    versions = {"before": args.before.resolve(), "after": args.after.resolve()}
    with tempfile.TemporaryDirectory() as workdir, KamailioInstance() as kamailio:
        config = Path(workdir) / "targets.toml"
        config.write_text(modules_config([("lab", kamailio.tcp)]))
        print(f"{'module':10} {'version':8} {'instructions/probe':>20}  after / before")
        for module in args.modules.split(","):
            per_probe = {}
            for name, source in versions.items():
                warm = _instructions(source, config, module, args.warm)
                counted = _instructions(source, config, module, args.warm + args.count)
                per_probe[name] = (counted - warm) / args.count
                ratio = f"x{per_probe[name] / per_probe['before']:.3f}" if name == "after" else ""
                print(f"{module:10} {name:8} {per_probe[name]:20,.0f}  {ratio}", flush=True)


if __name__ == "__main__":
    main()
