#!/usr/bin/env bash
# Runs every benchmark and regenerates BENCHMARKS.md (see bench/run_all.py; takes ~10 minutes).
#   ./scripts/bench.sh            the full run: fleets of 100, 1,000 and 5,000 targets
#   ./scripts/bench.sh --quick    tiny sizes in under a minute, to check that it all works
#   ./scripts/bench.sh --before DIR   adds the before/after table: DIR is an older tree
#                                     (git worktree add DIR COMMIT), run beside this code
# Other flags go to bench/run_all.py (--fleet, --interval, --output, --json).
# The exporter runs compiled, as wheels and the image carry it (scripts/build-compiled.sh, in a
# temporary copy of the tree); --quick runs the venv's pure-Python package instead.
# Installs Kamailio and iproute2 from Debian packages when missing and run as root, and the
# profiler py-spy into the venv.
EXTRAS="[test]" source "$(dirname "$0")/setup-env.sh"
apt_install kamailio=kamailio ip=iproute2 tc=iproute2
if [ ! -x .venv/bin/py-spy ]; then
    .venv/bin/python -m pip install -q py-spy || echo "py-spy not installed: no profiles" >&2
fi
case " $* " in
    *" --quick "*) exec .venv/bin/python bench/run_all.py "$@" ;;
esac
compiled=$(mktemp -d)
trap 'rm -rf "$compiled"' EXIT
scripts/build-compiled.sh "$compiled"
status=0
.venv/bin/python bench/run_all.py --source "$compiled" "$@" || status=$?
exit "$status"  # not exec: the trap removes the copy
