"""Coverage-guided fuzzing (atheris, libFuzzer) of one parser: decoder, address, target, config.

    python fuzz/atheris_fuzz.py TARGET CORPUS_DIR [libFuzzer flags...]

The checks are tests/fuzz_oracles.py's; only probe_exporter (and tomllib, which the config
parser drives) is instrumented. Every crash libFuzzer saves belongs in tests/regressions/TARGET/
as a regression test. scripts/fuzz.sh runs all targets with time limits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

with atheris.instrument_imports(include=["probe_exporter", "tomllib"]):
    import fuzz_oracles


def main() -> None:
    target = sys.argv[1]
    check = fuzz_oracles.CHECKS[target]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
