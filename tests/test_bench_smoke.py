"""The benchmark command runs end to end on a tiny fleet and writes every figure.

Only that it runs and reports: no timing is asserted (timings belong to BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
from conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
BOUND = 60  # seconds for the whole command, set-up included


def finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@pytest.mark.kamailio
@pytest.mark.slow
@pytest.mark.timeout(BOUND + 30)
def test_bench_quick_run_reports_every_figure(tmp_path: Path) -> None:
    require_binary("kamailio")
    report = tmp_path / "BENCHMARKS.md"
    figures = tmp_path / "figures.json"
    completed = subprocess.run(
        [
            str(ROOT / "scripts" / "bench.sh"),
            "--quick",
            "--output",
            str(report),
            "--json",
            str(figures),
            "--before",
            str(ROOT),  # this tree beside itself: the before/after section runs
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    results = json.loads(figures.read_text())
    assert results["machine"]["kamailio"].startswith("kamailio 5")
    assert results["machine"]["cores"].isdigit()

    serial = results["serial"]
    for kind in ("seed", "full"):
        for transport in ("tcp", "unix"):
            floor = serial["variants"][f"floor {kind} {transport}"]
            probe = serial["variants"][f"probe {kind} {transport}"]
            assert floor["n"] == probe["n"] > 0
            assert finite(floor["median"])
            assert finite(probe["p99"])
            assert finite(probe["cpu_ms_per_probe"])
    assert serial["rpcs"]["seed"] == 4  # stats.fetch all, pkg.stats, core.tcp_info, rtpengine
    assert serial["rpcs"]["default"] > serial["rpcs"]["seed"]
    assert serial["samples_full"] > serial["samples_seed"] > 0
    assert serial["floor_faults"] == 0

    versions = results["before_after"]
    assert len(versions["before_commit"]) >= 7
    assert [row["row"] for row in versions["serial"]][:2] == [
        "seed set, serial",
        "full set, serial",
    ]
    for row in versions["serial"]:
        for version in ("before", "after"):
            assert finite(row["versions"][version]["cpu_ms_per_probe"]), row
    for version in ("before", "after"):
        paced = versions["fleet"][version]
        assert paced["up"] == paced["probes"] > 0
        assert finite(paced["cpu_percent"])
    assert "## Before and after" in report.read_text()

    fleet = results["fleet"]
    assert [run["n"] for run in fleet["runs"]] == [5, 20]
    for run in fleet["runs"]:
        for mode in ("paced", "closed"):
            figures_of_mode = run[mode]
            assert figures_of_mode["errors"] == 0, figures_of_mode["first_error"]
            assert figures_of_mode["up"] == figures_of_mode["probes"] > 0
            assert finite(figures_of_mode["cpu_percent"])
            assert finite(figures_of_mode["latency_ms"]["p99"])
        assert run["pool_connections"] == run["n"]
    assert fleet["rss_idle_mib"] > 0
    assert fleet["rss_after_mib"] > 0

    wan = results["wan"]
    assert wan["feasibility"]["netem"] or wan["feasibility"]["error"]
    for name in (
        "floor seed",
        "probe seed pooled",
        "new connection + sequential seed",
        "floor full",
        "probe full pooled",
        "new connection + sequential full",
        "probe full new connection",
    ):
        assert finite(wan["variants"][name]["median"]), name

    assert results["cold"]["first_probe_ms"]["n"] == 1

    text = report.read_text()
    for heading in (
        "## Machine",
        "## Targets",
        "## Serial /probe",
        "## Fleet throughput",
        "## WAN",
        "## Cold start and memory",
        "## Profiles",
    ):
        assert heading in text
