#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs them all.
# Safe to re-run; needs root for apt and for the namespace tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in curl:curl lftp:lftp wget:wget tnftp:tnftp ncftpget:ncftp python3:python3 nft:nftables iptables-nft-restore:iptables ip:iproute2 ethtool:ethtool setpriv:util-linux debootstrap:debootstrap conntrack:conntrack chromium:chromium; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# Real FTP servers are unpacked, not installed: Debian's daemons conflict
# with each other, and unpacking runs no maintainer script, so no daemon
# ever starts in the root namespace. Their shared libraries are installed
# (libraries only). package:binary-inside-the-package
peers=target/peers
# package:file-inside-it[:folder under target/peers]
servers=(vsftpd:usr/sbin/vsftpd proftpd-core:usr/sbin/proftpd pure-ftpd:usr/sbin/pure-ftpd
  proftpd-mod-crypto:usr/lib/proftpd/mod_tls.so:proftpd)
libs=(libwrap0 libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23)
unpack=()
for entry in "${servers[@]}"; do
  IFS=: read -r pkg file folder <<<"$entry"
  dir=$peers/${folder:-${pkg%-core}}
  [ -e "$dir/$file" ] || unpack+=("$pkg:${folder:-${pkg%-core}}")
done
for lib in "${libs[@]}"; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "ok installed" || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ] || [ ${#unpack[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/test.sh: missing: ${need[*]} ${unpack[*]%%:*} — run as root so apt can fetch them" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
  mkdir -p "$peers"
  for entry in "${unpack[@]}"; do
    pkg=${entry%%:*}; dir=${entry#*:}
    (cd "$peers" && apt-get download -qq "$pkg" 2>/dev/null \
      && dpkg -x "${pkg}"_*.deb "$dir" && rm -f "${pkg}"_*.deb)
  done
fi

# pyftpdlib stands in for "your own server" (the `command` server kind):
# a private virtualenv from PyPI, nothing installed system-wide.
pyftpd=$peers/pyftpdlib
if ! "$pyftpd/bin/python" -c 'import pyftpdlib' 2>/dev/null; then
  python3 -m venv "$pyftpd" 2>/dev/null || {
    if [ "$(id -u)" -ne 0 ]; then
      echo "ci/test.sh: python3 -m venv failed — install python3-venv (as root)" >&2
      exit 2
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
    rm -rf "$pyftpd"; python3 -m venv "$pyftpd"
  }
  "$pyftpd/bin/pip" install -q --disable-pip-version-check 'pyftpdlib==2.2.0'
fi

cargo build --workspace --all-targets --quiet
# Shell completions and man pages, generated from the CLI definition.
assets=target/assets
mkdir -p "$assets/completions"
for sh in bash zsh fish; do
  target/debug/ftpnat completions "$sh" >"$assets/completions/ftpnat.$sh"
done
target/debug/ftpnat man "$assets/man" >/dev/null
cargo test --workspace "$@"
