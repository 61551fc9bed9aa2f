#!/usr/bin/env bash
# Fuzzes the BINRPC decoder, the address parser, /probe target resolution and the targets.toml
# parser: atheris (coverage-guided, seeded with tests/fixtures/captures and the tests' forms),
# then hypothesis with structured inputs at high example counts. Not part of the test suite.
#
#   scripts/fuzz.sh                     # 30 minutes of atheris in all, then hypothesis
#   FUZZ_SECONDS=600 scripts/fuzz.sh    # shorter
#
# Environment: FUZZ_SECONDS (atheris time over all targets, default 1800), FUZZ_TARGETS
# (default "decoder target config address"), FUZZ_HYPOTHESIS_EXAMPLES (per property, default
# 30000; 0 skips hypothesis), FUZZ_WORKDIR (corpora, logs and crashes; default
# /tmp/kamailio-probe-exporter-fuzz, kept between runs so that corpora grow).
#
# Every crash is saved under $FUZZ_WORKDIR/TARGET/crashes/; copy it to tests/regressions/TARGET/
# (tests/test_fuzz_regressions.py replays those) and fix the parser. Exit status 1 if any check
# failed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="$ROOT/.venv/bin/python"
WORK="${FUZZ_WORKDIR:-/tmp/kamailio-probe-exporter-fuzz}"
SECONDS_TOTAL="${FUZZ_SECONDS:-1800}"
TARGETS="${FUZZ_TARGETS:-decoder target config address}"
EXAMPLES="${FUZZ_HYPOTHESIS_EXAMPLES:-30000}"

[ -x "$PYTHON" ] || EXTRAS="[test]" bash scripts/setup-env.sh
"$PYTHON" -c "import atheris, coverage" 2>/dev/null \
  || "$PYTHON" -m pip install --quiet atheris coverage

# Share of the atheris time per target: the decoder and the config parser have the most paths.
weight() {
  case "$1" in
    decoder) echo 35 ;; config) echo 30 ;; target) echo 20 ;; address) echo 15 ;; *) echo 20 ;;
  esac
}
max_len() {
  case "$1" in decoder) echo 16384 ;; config) echo 8192 ;; *) echo 1024 ;; esac
}
total_weight=0
for target in $TARGETS; do total_weight=$((total_weight + $(weight "$target"))); done

mkdir -p "$WORK"
failed=0
summary="$WORK/summary.txt"
: >"$summary"
started=$(date +%s)
for target in $TARGETS; do
  dir="$WORK/$target"
  mkdir -p "$dir/corpus" "$dir/crashes"
  seeds=$("$PYTHON" fuzz/seeds.py "$target" "$dir/corpus" "$dir/dict")
  budget=$((SECONDS_TOTAL * $(weight "$target") / total_weight))
  deadline=$(($(date +%s) + budget))
  runs=0 executions=0
  # libFuzzer stops at a crash: start again from the corpus until the budget is spent (at most
  # 10 times, so a crash found at once cannot loop).
  while [ "$(date +%s)" -lt "$deadline" ] && [ "$runs" -lt 10 ]; do
    runs=$((runs + 1))
    left=$((deadline - $(date +%s)))
    log="$dir/run-$runs.log"
    echo "== $target: run $runs, ${left}s, corpus $(ls "$dir/corpus" | wc -l) inputs ($seeds seeds)"
    status=0
    "$PYTHON" fuzz/atheris_fuzz.py "$target" "$dir/corpus" -dict="$dir/dict" \
      -max_total_time="$left" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$dir/crashes/" >"$log" 2>&1 || status=$?
    done_line=$(grep -E "DONE|cov:" "$log" | tail -1 || true)
    units=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    executions=$((executions + ${units:-0}))
    echo "   exit $status: ${done_line:-no progress line}"
    if [ "$status" -ne 0 ]; then
      failed=1
      grep -E "OracleFailure|Error|Exception" "$log" | head -3 | sed 's/^/   /' || true
    fi
  done
  crashes=$(find "$dir/crashes" -type f | wc -l)
  cov=$(grep -hoE "cov: [0-9]+ ft: [0-9]+" "$dir"/run-*.log | tail -1 || true)
  echo "$target: $executions executions in $budget s, ${cov:-no coverage line}," \
    "corpus $(ls "$dir/corpus" | wc -l), crashes $crashes" | tee -a "$summary"
done

# Line and branch coverage of the parsers by the final corpora (and the saved regressions).
export COVERAGE_FILE="$WORK/coverage.data"
rm -f "$COVERAGE_FILE" "$COVERAGE_FILE".*
include="*/probe_exporter/binrpc/codec.py,*/probe_exporter/binrpc/address.py,*/probe_exporter/config.py"
for target in $TARGETS; do
  dirs=("$WORK/$target/corpus")
  [ -d "tests/regressions/$target" ] && dirs+=("tests/regressions/$target")
  "$PYTHON" -m coverage run -p --branch --include="$include" fuzz/replay.py "$target" "${dirs[@]}" \
    | tail -1 | tee -a "$summary" || failed=1
done
"$PYTHON" -m coverage combine -q
"$PYTHON" -m coverage report | tee -a "$summary"

if [ "$EXAMPLES" -gt 0 ]; then
  echo "== hypothesis: $EXAMPLES examples per property"
  hypothesis_started=$(date +%s)
  FUZZ_HYPOTHESIS_EXAMPLES="$EXAMPLES" "$PYTHON" -m pytest fuzz/hypothesis_soak.py -q \
    -p no:cacheprovider --timeout=0 | tail -3 | tee -a "$summary" || failed=1
  echo "hypothesis: $((5 * EXAMPLES)) examples in $(($(date +%s) - hypothesis_started)) s" \
    | tee -a "$summary"
fi
echo "fuzzing took $(($(date +%s) - started)) s; summary in $summary"
exit "$failed"
