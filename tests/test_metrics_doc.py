"""METRICS.md is generated from the families the probe and the collectors declare."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from probe_exporter.binrpc.codec import Struct
from probe_exporter.collectors import COLLECTORS, CollectorOptions
from probe_exporter.probe import PROBE_FAMILIES

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_md_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_metrics_md.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + " (run scripts/gen_metrics_md.py)"


def test_metrics_md_documents_every_family() -> None:
    text = (ROOT / "METRICS.md").read_text()
    names = [info.name for info in PROBE_FAMILIES]
    names += [info.name for c in COLLECTORS.values() for info in c.families]
    for name in names:
        assert f"| `{name}` |" in text, name


def test_no_statistic_takes_a_probe_family_name() -> None:
    names = [info.name for info in PROBE_FAMILIES]
    reply = Struct([(f"script.{name.removeprefix('kamailio_')}", "1") for name in names])
    families = COLLECTORS["stats"].collect([[reply]], CollectorOptions())
    emitted = {family.name for family in families}
    assert emitted.isdisjoint(names)
    dropped = {
        v[0]: n
        for v, n in next(f for f in families if f.name == "kamailio_exporter_stats_dropped").samples
    }
    assert dropped["duplicate"] == len(names)
