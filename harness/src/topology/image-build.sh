#!/usr/bin/env bash
# ftpnat image build: a Debian bookworm minbase tree (debootstrap, from the
# mirror apt uses) with the FTP peers and tools, trimmed, `docker import`ed.
# Daemons are never started: policy-rc.d forbids it while packages install
# (otherwise they would start in the root network namespace). The FTP
# servers conflict with each other as packages (ftp-server), so, as
# ci/test.sh does, they are unpacked (dpkg -x) over the tree, and their
# libraries installed.
# Usage: UNPACK="pkg…" image-build.sh WORKDIR MIRROR IMAGE:TAG PACKAGES…
set -euo pipefail
work=$1 mirror=$2 tag=$3
shift 3
root=$work/rootfs
rm -rf "$root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$work/apt.log" 2>&1 \
  || { tail -20 "$work/apt.log" >&2; exit 1; }
if [ -n "${UNPACK:-}" ]; then
  mkdir -p "$root/tmp/unpack"
  chroot "$root" sh -c "cd /tmp/unpack && apt-get download -qq $UNPACK" >>"$work/apt.log" 2>&1 \
    || { tail -20 "$work/apt.log" >&2; exit 1; }
  # Through a staging folder: extracting straight over the tree would
  # replace merged-/usr symlinks (/lib -> usr/lib) with directories.
  for deb in "$root"/tmp/unpack/*.deb; do
    stage=$work/stage
    rm -rf "$stage"
    dpkg -x "$deb" "$stage"
    tar -C "$stage" -cf - . | tar -C "$root" -xf - --keep-directory-symlink --no-overwrite-dir
  done
  rm -rf "$root/tmp/unpack"
fi
chroot "$root" apt-get clean
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/*
: >"$root/etc/resolv.conf"
tar -C "$root" -cf "$work/rootfs.tar" .
docker import --change 'CMD ["/bin/sleep", "infinity"]' "$work/rootfs.tar" "$tag" >/dev/null
rm -rf "$root" "$work/rootfs.tar"
