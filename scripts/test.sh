#!/usr/bin/env bash
# Runs every check: ruff, mypy --strict and the whole pytest suite (extra args go to pytest).
# Installs Kamailio, sipp and Prometheus from Debian packages when missing and run as root, and
# builds the Debian chroots of Kamailio 6.0 and 6.1 (scripts/kamailio-chroot.sh) unless cached.
# --fast (first argument): the same checks, but only the quick hermetic tests (`pytest -m
# "hermetic and not slow"`, see tests/conftest.py), which need none of those programs: nothing
# is installed but .venv.
# --compiled (first argument): pytest only (args as above, e.g. -m hermetic), against the
# modules setup.py compiles with mypyc, built in a copy of the tree; .venv stays pure Python.
EXTRAS="[test]" source "$(dirname "$0")/setup-env.sh"
if [ "${1:-}" = "--compiled" ]; then
    shift
    copy=$(mktemp -d)
    trap 'rm -rf "$copy"' EXIT
    scripts/build-compiled.sh "$copy"
    # First on the path, in this process and the exporters the tests start.
    cd "$copy"
    export PYTHONPATH="$copy" PROBE_EXPORTER_MYPYC=1
    # Left out: tests that build and run their own venv or scripts (a PYTHONPATH would shadow
    # the fresh venv's package; the copy has no .venv). The default run builds the compiled
    # wheel and runs it installed alone (tests/test_package.py).
    status=0
    "$ROOT/.venv/bin/pytest" -p no:cacheprovider --deselect tests/test_bench_smoke.py \
        --deselect tests/test_package.py::test_wheel_installed_alone_runs_and_probes_kamailio \
        "$@" || status=$?
    exit "$status"  # not exec: the trap removes the copy
fi
if [ "${1:-}" = "--fast" ]; then
    shift
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    exec .venv/bin/pytest -m "hermetic and not slow" "$@"
fi
apt_install kamailio=kamailio sipp=sip-tester promtool=prometheus curl=curl openssl=openssl systemd-analyze=systemd \
    chromium=chromium chromedriver=chromium-driver
# The image tests build the Dockerfile with podman on a base made by debootstrap.
apt_install podman=podman buildah=buildah runc=runc debootstrap=debootstrap newuidmap=uidmap
# tls.so is a separate Debian package; the test Kamailio loads it for tls.info.
if [ ! -e /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ] && [ ! -e /usr/lib/aarch64-linux-gnu/kamailio/modules/tls.so ]; then
    apt_packages kamailio-tls-modules
fi
# Kamailio 6.0 and 6.1 for the metric-set tests: Debian chroots, cached outside the repository.
if [ "$(id -u)" -eq 0 ]; then
    apt_install mmdebstrap=mmdebstrap debootstrap=debootstrap
    scripts/kamailio-chroot.sh >/dev/null ||
        echo "kamailio-chroot.sh failed: tests of Kamailio 6.x skip (fail under CI=true)" >&2
fi
scripts/fetch-tools.sh || echo "fetch-tools.sh failed: tests needing helm skip (fail under CI=true)" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
