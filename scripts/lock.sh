#!/usr/bin/env bash
# Regenerates the pinned, hashed dependency lists from pyproject.toml with pip-tools:
#   requirements.lock        the exporter's dependencies (the image and scripts/run.sh install it)
#   requirements-build.lock  the build backend (setuptools) that turns the project into a wheel
# Kept pins stay unless pyproject.toml needs others; `scripts/lock.sh --upgrade` takes the newest
# releases allowed (then run ./scripts/test.sh). Resolved for the Python running it: use the
# image's, 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools==7.6.2
export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
compile() {
    "$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras \
        --no-emit-index-url --no-emit-find-links "$@" pyproject.toml
}
compile --output-file requirements.lock "$@"
compile --all-build-deps --only-build-deps --output-file requirements-build.lock "$@"
