#!/usr/bin/env bash
# The cost of being patched: a call-heavy loop through one function, run
# unpatched, then patched with code that differs by a constant only (the
# same instructions), then reverted. Prints the median time per call of
# each phase and their ratio (run as root, after scripts/build.sh). The
# loop is always in the function: applied with --allow-active, which
# checks only that no thread is on the 5-byte jump site.
# usage: patched.sh [BATCHES_PER_PHASE]   (default 9, 20 M calls each)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
. "$src/bench/lib.bash"
n=${1:-9}
t=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$t"' EXIT
bench_patch "$t" callcost
"$B/testdata/callcost-v1" >"$t/out" &
pid=$!
export HPATCH_STATE_DIR=$t/state HPATCH_AUDIT_LOG=$t/audit.log

count() { grep -c ns_per_call "$t/out" || true; }
# wait_for N: until N batches have been printed.
wait_for() { while [ "$(count)" -lt "$1" ]; do sleep 0.05; done; }
# median FIRST LAST: of batches FIRST..LAST (1-based).
median() { grep ns_per_call "$t/out" | sed -n "$1,$2p" | cut -d= -f2 |
	sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The batch under way at each switch straddles two phases: skipped.
wait_for $((n + 1)) # the first batch warms up
hp() { "$B/runtime/hpatch" "$@" >/dev/null 2>"$t/err" || { cat "$t/err" >&2; exit 1; }; }
hp apply -p "$pid" --allow-active --trust "$t/trust" "$t/callcost.hpatch"
a=$(count)
wait_for $((a + n + 1))
hp revert -p "$pid" --allow-active
r=$(count)
wait_for $((r + n + 1))
un1=$(median 2 "$((n + 1))")
pa=$(median "$((a + 2))" "$((a + n + 1))")
un2=$(median "$((r + 2))" "$((r + n + 1))")
awk -v u1="$un1" -v p="$pa" -v u2="$un2" 'BEGIN {
	u = (u1 < u2) ? u1 : u2
	printf "patched: unpatched_ns=%.3f patched_ns=%.3f reverted_ns=%.3f " \
		"extra_ns=%.3f ratio=%.3f\n", u1, p, u2, p - u, p / u }'
