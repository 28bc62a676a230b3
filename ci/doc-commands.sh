#!/usr/bin/env bash
# Runs every ```sh block of the user guide (docs/getting-started.md and
# docs/cookbook/*.md, or the files given) as written, from the repository
# root with target/debug (or $FTPNAT_BIN_DIR) first on the PATH, one command
# at a time. A trailing `# exit N` on a command's first line states the exit
# code it must give (default 0). ```console blocks are not run.
# Needs root and what ci/test.sh installs. Exit 0 when every command gave
# its stated code.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${FTPNAT_BIN_DIR:-$PWD/target/debug}:$PATH"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(docs/getting-started.md docs/cookbook/*.md)
exec python3 - "${files[@]}" <<'PY'
import re, subprocess, sys, time

def commands(path):
    lines = open(path).read().split("\n")
    i, out = 0, []
    while i < len(lines):
        if lines[i].strip() != "```sh":
            i += 1
            continue
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line, start = lines[i], i + 1
            i += 1
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            cmd = [line]
            while cmd[-1].endswith("\\") and i < len(lines):
                cmd.append(lines[i]); i += 1
            m = re.search(r"<<-?\s*'?(\w+)'?", line)
            if m:
                while i < len(lines):
                    cmd.append(lines[i]); i += 1
                    if cmd[-1].strip() == m.group(1):
                        break
            want = re.search(r"#\s*exit\s+(\d+)\s*$", line)
            out.append((start, "\n".join(cmd), int(want.group(1)) if want else 0))
    return out

bad = 0
total = 0
for path in sys.argv[1:]:
    for line, cmd, want in commands(path):
        total += 1
        t0 = time.time()
        try:
            p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=600)
            code, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired:
            code, out = "timeout", ""
        first = cmd.split("\n")[0]
        ok = code == want
        print(f"{'ok ' if ok else 'BAD'} {path}:{line}: exit {code} (want {want}, {time.time() - t0:.1f} s): {first[:90]}")
        if not ok:
            bad += 1
            print("\n".join("    " + l for l in out.strip().split("\n")[-25:]))
print(f"doc-commands: {total - bad} of {total} commands gave their stated exit code")
sys.exit(1 if bad else 0)
PY
