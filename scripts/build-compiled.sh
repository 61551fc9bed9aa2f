#!/usr/bin/env bash
# Copies the tree (tracked and untracked, not ignored files) into DIR and compiles there, in
# place, the modules setup.py compiles with mypyc: with DIR first on PYTHONPATH, Python then
# runs the compiled form, as wheels and the image do. The development venv stays pure Python.
#   scripts/build-compiled.sh DIR     (run by scripts/test.sh --compiled and scripts/bench.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:?usage: scripts/build-compiled.sh DIR}
cd "$ROOT"
mkdir -p "$DIR"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$DIR"
# setuptools reads pyproject.toml's license field from version 77 on
.venv/bin/python -m pip install -q "setuptools>=77"
(cd "$DIR" && PROBE_EXPORTER_MYPYC=1 "$ROOT/.venv/bin/python" setup.py -q build_ext --inplace) \
    >"$DIR/mypyc.log" 2>&1 || { cat "$DIR/mypyc.log" >&2; exit 1; }
