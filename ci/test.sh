#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them all.
# Safe to re-run; needs root for apt and for the namespace tests.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

need=()
for pair in curl:curl lftp:lftp wget:wget tnftp:tnftp ncftpget:ncftp python3:python3 nft:nftables iptables-nft-restore:iptables ip:iproute2 ethtool:ethtool setpriv:util-linux debootstrap:debootstrap conntrack:conntrack chromium:chromium dpkg-deb:dpkg; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# pyftpdlib's virtualenv needs the venv module.
dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q "ok installed" || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/test.sh: missing: ${need[*]} — run as root so apt can fetch them" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo build --workspace --all-targets --quiet
# Real FTP servers (vsftpd, ProFTPD with mod_tls, Pure-FTPd; pyftpdlib in a
# virtualenv) go to the per-user peers folder, found from any directory:
# unpacked, not installed (Debian's daemons conflict with each other, and
# unpacking runs no maintainer script, so no daemon ever starts in the root
# namespace); their shared libraries are installed with apt.
"$target/debug/ftpnat" peers install
# Checkouts, docs and tests also name target/peers: the same folder.
peers=$("$target/debug/ftpnat" peers path)
if [ ! -e target/peers ] && [ "$peers" != "$PWD/target/peers" ]; then
  mkdir -p target
  ln -s "$peers" target/peers
fi
# Shell completions and man pages, generated from the CLI definition.
assets=target/assets
mkdir -p "$assets/completions"
for sh in bash zsh fish; do
  "$target/debug/ftpnat" completions "$sh" >"$assets/completions/ftpnat.$sh"
done
"$target/debug/ftpnat" man "$assets/man" >/dev/null
cargo test --workspace "$@"
