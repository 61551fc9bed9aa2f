"""Build hook: compiles the pure hot modules with mypyc (the rest is in pyproject.toml).

Wheels (and so the image) carry the compiled modules; editable installs (`pip install -e .`,
the development venv) stay pure Python, so that an edit takes effect without a build. The
environment variable PROBE_EXPORTER_MYPYC overrides either: 1 compiles, 0 builds pure Python.
The pure-Python modules are the same source and remain the fallback: nothing else changes.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

# The per-probe work (decode, collectors, value checks, rendering): no I/O, typed for mypy
# --strict, no monkeypatched functions. collectors/merge.py (HTTP sources) is left out.
COMPILED = [
    "probe_exporter/binrpc/codec.py",
    "probe_exporter/metrics.py",
    "probe_exporter/exposition.py",
    *(
        f"probe_exporter/collectors/{name}.py"
        for name in (
            "__init__",
            "base",
            "core",
            "dialog",
            "dispatcher",
            "dmq",
            "htable",
            "pkg",
            "rtpengine",
            "shmmem",
            "sl",
            "stats",
            "tcp_info",
            "tls",
            "tm",
            "uac",
        )
    ),
]

# Commands that only write metadata need no compiling (pip runs them before the build).
_METADATA_ONLY = {"egg_info", "dist_info", "sdist"}


def compiling() -> bool:
    setting = os.environ.get("PROBE_EXPORTER_MYPYC", "")
    if setting in ("0", "1"):
        return setting == "1"
    if setting:
        sys.exit(f"PROBE_EXPORTER_MYPYC must be 0 or 1, not {setting!r}")
    return "editable_wheel" not in sys.argv


ext_modules = []
if compiling() and not _METADATA_ONLY.intersection(sys.argv):
    from mypyc.build import mypycify

    ext_modules = mypycify(COMPILED, opt_level="3")

setup(ext_modules=ext_modules)
