#!/usr/bin/env bash
# Builds a "bring your own router" test image offline: /bin/sh, nft and sleep
# from this machine with their libraries, an entrypoint that waits for the
# interfaces ftpnat wires (lan0, wan0), loads RULES with nft and prints
# "router ready". Usage: build-router.sh RULES.nft IMAGE:TAG
set -euo pipefail
rules=$1 tag=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/bin"
for b in "$(readlink -f /bin/sh)" /usr/sbin/nft /bin/sleep; do
  for f in "$b" $(ldd "$b" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
  done
done
cp -L /bin/sh "$root/bin/sh"
cat >"$root/entrypoint.sh" <<'EOF'
#!/bin/sh
while [ ! -e /sys/class/net/lan0 ] || [ ! -e /sys/class/net/wan0 ]; do sleep 0.05; done
nft -f /rules.nft && echo "router ready"
exec sleep infinity
EOF
grep -v '^#' "$rules" >"$root/rules.nft"
tar -C "$root" -cf "$work/router.tar" .
# Replace an earlier build of the same tag (no dangling images pile up).
docker rmi -f "$tag" >/dev/null 2>&1 || true
docker import --change 'ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]' "$work/router.tar" "$tag" >/dev/null
