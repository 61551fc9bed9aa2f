#!/usr/bin/env bash
# Copies the alert rules and the Grafana dashboard of deploy/ into the Helm chart, which cannot
# read files outside its own directory. deploy/ is the source; tests fail when the copies differ.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FILES="$ROOT/helm/kamailio-probe-exporter/files"
mkdir -p "$FILES"
cp "$ROOT/deploy/rules/kamailio-alerts.yml" "$FILES/kamailio-alerts.yml"
cp "$ROOT/deploy/grafana/kamailio-fleet.json" "$FILES/kamailio-fleet.json"
