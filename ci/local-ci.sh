#!/usr/bin/env bash
# Runs the CI templates' own command blocks (ci/github-actions.yml and
# ci/gitlab-ci.yml, between the ">>> ftpnat-ci" markers) here, shard by
# shard, against a server standing in for "yours" — pyftpdlib with its
# profile unless FTPNAT_SERVER/FTPNAT_SERVER_CONFIG/FTPNAT_PROFILE are set —
# and checks the contract the templates rely on:
#   * every shard exits 0 when its JUnit has no failure, 1 when it has one;
#   * JUnit, an artifacts folder and the HTML report exist for every shard,
#     also a failing one;
#   * the shards together run every scenario of the suite exactly once.
# The install blocks are syntax-checked only (they fetch packages and build
# ftpnat, which this checkout has already done).
#
# Usage: bash ci/local-ci.sh [SHARDS]     (root, after ci/test.sh; FTPNAT=BINARY
# skips building the release binary)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shards=${1:-4}
if [ -z "${FTPNAT:-}" ]; then
  cargo build --release --quiet -p ftpnat
  export FTPNAT=$root/target/release/ftpnat
fi
export FTPNAT_SUITE=$root/scenarios/conformance
export FTPNAT_SERVER=${FTPNAT_SERVER:-command:$root/target/peers/pyftpdlib/bin/python}
export FTPNAT_SERVER_CONFIG=${FTPNAT_SERVER_CONFIG:-$root/scenarios/servers/pyftpdlib.py}
export FTPNAT_PROFILE=${FTPNAT_PROFILE:-$root/scenarios/profiles/pyftpdlib.toml}
# The blocks run in a scratch folder: make the files absolute.
FTPNAT_SERVER_CONFIG=$(realpath "$FTPNAT_SERVER_CONFIG")
FTPNAT_PROFILE=$(realpath "$FTPNAT_PROFILE")
if [ "$(id -u)" -eq 0 ]; then export SUDO=""; else export SUDO=sudo; fi
if [[ $FTPNAT_SERVER == *pyftpdlib/bin/python ]] && [ ! -x "${FTPNAT_SERVER#command:}" ]; then
  echo "local-ci: ${FTPNAT_SERVER#command:} is missing — run ci/test.sh first (it creates the pyftpdlib virtualenv)" >&2
  exit 2
fi

# block FILE NAME: the lines between "# >>> ftpnat-ci NAME" and "# <<< ftpnat-ci",
# without YAML list dashes and block indentation.
block() {
  python3 - "$1" "$2" <<'PY'
import sys, textwrap
path, name = sys.argv[1], sys.argv[2]
lines, inside, found = [], False, False
for line in open(path):
    s = line.strip()
    if s == f"# >>> ftpnat-ci {name}":
        inside, found = True, True
        continue
    if s == "# <<< ftpnat-ci":
        inside = False
        continue
    if inside:
        if s in ("- |", "- >"):
            continue
        lines.append(line.rstrip("\n"))
if not found:
    sys.exit(f"{path}: no '# >>> ftpnat-ci {name}' block")
print(textwrap.dedent("\n".join(lines)))
PY
}

all=$("$FTPNAT" list "$FTPNAT_SUITE" | awk '{print $1}' | sort)
total=$(wc -l <<<"$all")
bad=0
for tpl in ci/github-actions.yml ci/gitlab-ci.yml; do
  bash -n <(block "$tpl" install) || { echo "local-ci: $tpl: install block does not parse" >&2; bad=1; }
  run=$(block "$tpl" run)
  work=$(mktemp -d "${TMPDIR:-/tmp}/ftpnat-local-ci.XXXXXX")
  seen=""
  for k in $(seq 1 "$shards"); do
    set +e
    (cd "$work" && SHARD=$k SHARDS=$shards bash -e -c "$run") >"$work/log-$k.txt" 2>&1
    code=$?
    set -e
    out=$work/ftpnat-out/shard-$k
    if [ ! -s "$out/junit.xml" ] || [ ! -d "$out/artifacts" ] || [ ! -s "$out/summary.txt" ] || [ ! -s "$out/report/index.html" ]; then
      echo "local-ci: $tpl shard $k/$shards: no JUnit/artifacts/summary/HTML report (exit $code):" >&2
      tail -20 "$work/log-$k.txt" >&2
      bad=1
      continue
    fi
    failures=$(grep -o '<testsuites[^>]*failures="[0-9]*"' "$out/junit.xml" | sed 's/.*failures="\([0-9]*\)"/\1/')
    want=0; [ "${failures:-0}" -gt 0 ] && want=1
    names=$(grep -o '<testcase name="[^"]*"' "$out/junit.xml" | sed 's/<testcase name="//; s/"$//')
    seen+="$names"$'\n'
    printf '%-24s shard %d/%d: exit %d, %2d scenarios, %d failed\n' "$tpl" "$k" "$shards" "$code" \
      "$(grep -c . <<<"$names")" "${failures:-0}"
    if [ "$code" -ne "$want" ]; then
      echo "local-ci: $tpl shard $k/$shards exited $code, expected $want (JUnit failures: $failures)" >&2
      bad=1
    fi
  done
  if [ "$(grep . <<<"$seen" | sort)" != "$all" ]; then
    echo "local-ci: $tpl: the shards did not run every scenario exactly once" >&2
    diff <(grep . <<<"$seen" | sort) <(echo "$all") >&2 || true
    bad=1
  fi
  rm -rf "$work"
done
if [ "$bad" -ne 0 ]; then
  echo "local-ci: FAILED" >&2
  exit 1
fi
echo "local-ci: both templates: $shards shards cover all $total scenarios; exit codes follow the JUnit verdicts"
