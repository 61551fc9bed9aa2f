"""py-spy profiles of the exporter process, summarised per function.

py-spy samples with `--gil --native`: only the thread holding the GIL, i.e. Python code running,
with the C functions under it (the cyclic GC shows as gc_collect_main). Left out is what runs
without the GIL: waiting in epoll, socket writes (during which the peer a write wakes often takes
the core first, wall time that is not the exporter's work), and zlib compressing a response.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import VENV_BIN

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def profiled(pid: int, seconds: float, load: Callable[[], float] | None = None) -> dict[str, Any]:
    """py-spy samples `pid` for `seconds` (while `load` runs in a loop here, if given)."""
    py_spy = VENV_BIN / "py-spy"
    if not py_spy.exists():
        return {"error": "py-spy is not installed (scripts/bench.sh installs it)"}
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as handle:
        raw_path = Path(handle.name)
    try:
        process = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(int(seconds), 1)),
                "--rate",
                "500",
                "--gil",
                "--native",
                "--format",
                "raw",
                "--output",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + seconds + 30
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if load is not None:
                    for _ in range(20):
                        load()
                else:
                    time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.terminate()
            _, stderr = process.communicate(timeout=30)
        if process.returncode != 0:
            return {"error": f"py-spy exit {process.returncode}: {stderr.strip()[-500:]}"}
        return summarize(raw_path.read_text())
    finally:
        raw_path.unlink(missing_ok=True)


def _frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "lib/python3", "/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({file})"


def summarize(raw: str, top: int = 15) -> dict[str, Any]:
    """Own and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count

    def ranked(table: dict[str, int], skip_outer: bool) -> list[tuple[str, float]]:
        rows = sorted(table.items(), key=lambda item: -item[1])
        if skip_outer:  # the event loop and the entry point hold every sample: no news
            rows = [row for row in rows if row[1] < total * 0.97]
        return [(name, 100 * count / total) for name, count in rows[:top]] if total else []

    return {"samples": total, "self": ranked(own, False), "inclusive": ranked(inclusive, True)}
