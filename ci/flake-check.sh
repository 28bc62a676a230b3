#!/usr/bin/env bash
# Runs the conformance suite N times back to back (default 20) on the sim
# engine and fails on the first run that does not pass every scenario.
# Usage: bash ci/flake-check.sh [N]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
cargo build --release -p ftpnat --quiet
for i in $(seq 1 "$n"); do
  if ! out=$(target/release/ftpnat run 2>&1); then
    echo "run $i of $n failed:"
    echo "$out" | grep -v '^PASS'
    exit 1
  fi
  echo "run $i/$n: $(echo "$out" | tail -1)"
done
echo "$n passed, 0 failed"
