#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) and fails on
# any crash. Needs cargo-fuzz (installed if missing) and libFuzzer's stable
# escape hatch RUSTC_BOOTSTRAP=1. Usage: bash ci/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for t in command codecs config scenario gateway; do
  # Fuzz a scratch copy of the committed seed corpus, so runs do not grow it.
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/"
  out=$(cargo fuzz run -O "$t" "$work" -- -max_total_time="$secs" -print_final_stats=1 2>&1) || { echo "$out" | tail -40; echo "fuzz target $t crashed"; exit 1; }
  runs=$(echo "$out" | grep -o 'stat::number_of_executed_units: *[0-9]*' | grep -o '[0-9]*$' || echo '?')
  echo "fuzz $t: ${secs}s, $runs executions, 0 crashes"
  rm -rf "$work"
done
