#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them all.
# Safe to re-run; needs root for apt and for the namespace tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in curl:curl lftp:lftp python3:python3 nft:nftables ip:iproute2 ethtool:ethtool setpriv:util-linux; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/test.sh: missing packages: ${need[*]} — install them (apt-get install -y ${need[*]}) or run as root" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo build --workspace --all-targets --quiet
cargo test --workspace "$@"
