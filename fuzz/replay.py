"""Runs one fuzz target's check over every file of some directories (a corpus, saved crashes).

    python fuzz/replay.py TARGET DIR [DIR...]

Prints how many inputs passed and each one that failed (exit 1 if any did). scripts/fuzz.sh runs
it under coverage.py over the final corpora to measure line coverage of the parsers.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzz_oracles


def main(argv: list[str]) -> int:
    target, *directories = argv
    check = fuzz_oracles.CHECKS[target]
    passed = 0
    failed: list[tuple[Path, str]] = []
    for directory in directories:
        for path in sorted(Path(directory).glob("*")):
            if not path.is_file():
                continue
            try:
                check(path.read_bytes())
            except Exception:
                failed.append((path, traceback.format_exc(limit=-3)))
            else:
                passed += 1
    for path, trace in failed:
        print(f"FAILED {path}\n{trace}")
    print(f"{target}: {passed} inputs passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
