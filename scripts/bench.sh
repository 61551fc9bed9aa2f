#!/usr/bin/env bash
# Runs every benchmark and regenerates BENCHMARKS.md (see bench/run_all.py; takes ~10 minutes).
#   ./scripts/bench.sh            the full run: fleets of 100, 1,000 and 5,000 targets
#   ./scripts/bench.sh --quick    tiny sizes in under a minute, to check that it all works
# Other flags go to bench/run_all.py (--fleet, --interval, --output, --json).
# Installs Kamailio and iproute2 from Debian packages when missing and run as root, and the
# profiler py-spy into the venv.
EXTRAS="[test]" source "$(dirname "$0")/setup-env.sh"
apt_install kamailio=kamailio ip=iproute2 tc=iproute2
if [ ! -x .venv/bin/py-spy ]; then
    .venv/bin/python -m pip install -q py-spy || echo "py-spy not installed: no profiles" >&2
fi
exec .venv/bin/python bench/run_all.py "$@"
