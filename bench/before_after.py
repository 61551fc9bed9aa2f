"""Two versions of the exporter side by side: the same probes, the versions taking turns.

`before` is another tree (an older commit: `git worktree add /tmp/old <commit>`), run as it
is; `after` is this code, or a tree with the compiled modules (scripts/build-compiled.sh).
Both probe the same Kamailios: the lab's (tests/kamailio_harness.py) and a bigger one (5 SIP
children, three dispatcher destinations), serially, back to back and after idling as paced
scrapes do. run_all.py adds the fleet of 1,000 targets every 15 s, both exporters at once.

Run on its own (the serial rows only), e.g. while changing the code:
    .venv/bin/python bench/before_after.py --before /tmp/old [--after DIR] [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchlib import ROOT
from httpclient import BlockingHttp
from measure import (
    Exporter,
    Variant,
    after_idle,
    interleaved,
    log,
    modules_config,
    probe_check,
    probe_runner,
    stopping,
)

from tests.kamailio_harness import KamailioInstance

BIG = {"children": 5, "extra_destinations": 1}  # 5 SIP children; 3 dispatcher destinations
# (row, target, module, idle seconds before each probe)
ROWS = (
    ("seed set, serial", "lab", "seed", 0.0),
    ("full set, serial", "lab", "default", 0.0),
    ("full set, serial, 5 children, 3 destinations", "big", "default", 0.0),
    ("full set, paced: 10 ms idle before each", "lab", "default", 0.01),
    ("full set, paced: 30 ms idle before each", "lab", "default", 0.03),
)


def serial_rows(
    versions: dict[str, Path | None],
    lab: KamailioInstance,
    big: KamailioInstance,
    workdir: Path,
    count: int,
    block: int,
) -> list[dict[str, Any]]:
    """Per row, each version's CPU per probe and latency; the versions take turns in blocks."""
    config = modules_config([("lab", lab.tcp), ("big", big.tcp)])
    exporters = {
        name: Exporter(workdir, f"version-{name}", config, source=source)
        for name, source in versions.items()
    }
    closers: list[BlockingHttp] = []
    with stopping(*exporters.values()):
        try:
            for exporter in exporters.values():
                exporter.wait_ready()
            rows = []
            for row, target, module, idle in ROWS:
                variants = []
                for name, exporter in exporters.items():
                    http = BlockingHttp("127.0.0.1", exporter.port)
                    closers.append(http)
                    run = probe_runner(http, target, module)
                    variants.append(
                        Variant(
                            name,
                            after_idle(run, idle) if idle else run,
                            exporter.pid,
                            probe_check(http, target, module),
                        )
                    )
                # paced rows are slower: fewer probes, in smaller blocks
                n, size = (count, block) if not idle else (count // 4, max(block // 4, 1))
                log(f"before/after: {row}, {n} probes per version")
                results = interleaved(variants, n, size, size // 10 if idle else 0)
                rows.append({"row": row, "idle_ms": idle * 1000, "versions": results})
            return rows
        finally:
            for http in closers:
                http.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="the older tree")
    parser.add_argument("--after", type=Path, default=None, help="this tree when not given")
    parser.add_argument(
        "--also", action="append", default=[], help="NAME=DIR: a third version, and more"
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--block", type=int, default=100)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kpe-before-after-"))
    lab = KamailioInstance(workdir / "lab")
    big = KamailioInstance(workdir / "big", **BIG)
    with stopping(lab, big):
        lab.start()
        big.start()
        versions = {"before": args.before, "after": args.after or ROOT}
        for also in args.also:
            name, _, directory = also.partition("=")
            versions[name] = Path(directory)
        rows = serial_rows(versions, lab, big, workdir, args.count, args.block)
    for row in rows:
        cells = "  ".join(
            f"{name}: cpu {r['cpu_ms_per_probe']:.3f} med {r['median']:.3f}"
            for name, r in row["versions"].items()
        )
        print(f"{row['row']:50} {cells}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
