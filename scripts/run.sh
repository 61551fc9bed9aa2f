#!/usr/bin/env bash
# Runs the exporter with ./targets.toml on :9494 (extra flags are passed through).
EXTRAS="" source "$(dirname "$0")/setup-env.sh"
exec .venv/bin/kamailio-probe-exporter --config.file targets.toml "$@"
