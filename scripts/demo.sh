#!/usr/bin/env bash
# The main job, live: build hpatch and the demo service, start demo v1,
# build a signed patch from the v1 -> v2 object trees with hpdiff, apply it
# to the running process, show its behaviour before and after, then revert.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bash "$src/scripts/setup.sh"
export HP_BUILD_DIR=${HP_BUILD_DIR:-$src/build}
bash "$src/scripts/build.sh" >/dev/null
B=$HP_BUILD_DIR
# HP_TOOLS=installed: the hpdiff, hpsign and hpatch on PATH (the .deb, or
# `cmake --install`) instead of the build tree's; the demo service and its
# object trees still come from the build tree.
if [ "${HP_TOOLS:-build}" = installed ]; then
	for t in hpdiff hpsign hpatch; do
		command -v "$t" >/dev/null || {
			echo "demo: HP_TOOLS=installed, but '$t' is not on PATH" >&2
			exit 1
		}
	done
	HPDIFF=$(command -v hpdiff) HPSIGN=$(command -v hpsign) HPATCH=$(command -v hpatch)
else
	HPDIFF=$B/differ/hpdiff HPSIGN=$B/signing/hpsign HPATCH=$B/runtime/hpatch
fi
W=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$W"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
query() { echo "$1" >&3; IFS= read -r -t 5 line <&3; echo "  reply to '$1': $line"; }
recent() { sleep 0.35; tail -n 3 "$W/demo.log" | sed 's/^/  log: /'; }

say "tools: $HPDIFF, $HPSIGN, $HPATCH"
say "start demo v1 (3 worker threads + TCP server)"
"$B/testdata/demo-v1" 0 3 >"$W/demo.log" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -qs ready "$W/demo.log" && break; sleep 0.1; done
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$W/demo.log" | head -1)
echo "  pid $pid, port $port, $(ls /proc/$pid/task | wc -l) threads"
exec 3<>"/dev/tcp/127.0.0.1/$port"
query 3
recent

say "release engineer: make a key, diff the builds, sign the patch"
"$HPSIGN" keygen "$W/release"
mkdir -p "$W/trusted.d" && cp "$W/release.pub" "$W/trusted.d/"
"$HPDIFF" --old "$B/testdata/CMakeFiles/demo-v1.objs.dir" \
	--new "$B/testdata/CMakeFiles/demo-v2.objs.dir" \
	--binary "$B/testdata/demo-v1" --key "$W/release.key" \
	-d "10% volume discount" -o "$W/discount.hpatch"

say "operator: apply it to the running process (no restart)"
"$HPATCH" apply -p "$pid" --trust "$W/trusted.d" --audit-log "$W/audit.log" "$W/discount.hpatch"
say "after: same pid, same threads, same open connection"
echo "  pid $pid, $(ls /proc/$pid/task | wc -l) threads"
query 3
recent
"$HPATCH" status -p "$pid"

say "revert"
"$HPATCH" revert -p "$pid" --audit-log "$W/audit.log"
say "audit log"
cat "$W/audit.log"
query 3
recent
exec 3>&-
say "done"
