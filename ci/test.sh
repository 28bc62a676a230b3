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
# Real FTP servers are unpacked, not installed: Debian's daemons conflict
# with each other, and unpacking runs no maintainer script, so no daemon
# ever starts in the root namespace. vsftpd needs libwrap0 at run time.
peers=target/peers
need_vsftpd=no
[ -x "$peers/vsftpd/usr/sbin/vsftpd" ] || need_vsftpd=yes
[ -e /usr/lib/x86_64-linux-gnu/libwrap.so.0 ] || [ -e /lib/x86_64-linux-gnu/libwrap.so.0 ] || need+=(libwrap0)
if [ ${#need[@]} -gt 0 ] || [ "$need_vsftpd" = yes ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/test.sh: missing: ${need[*]} ${need_vsftpd/yes/vsftpd (unpacked)} — run as root so apt can fetch them" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
  if [ "$need_vsftpd" = yes ]; then
    mkdir -p "$peers"
    (cd "$peers" && apt-get download -qq vsftpd && dpkg -x vsftpd_*.deb vsftpd && rm -f vsftpd_*.deb)
  fi
fi

cargo build --workspace --all-targets --quiet
cargo test --workspace "$@"
