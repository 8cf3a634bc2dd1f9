#!/usr/bin/env bash
# Unwinding through patched C++ code (docs/UNWIND.md): the patch carries
# the FDEs and LSDAs of its functions and registers them with the target's
# libgcc. Patched, a function throws and its caller catches; an exception
# passes through a patched frame (its destructor runs); a patched function
# catches; backtrace() inside patched code lists every frame; a thread
# cancelled inside patched code runs its cleanup handler. An apply that
# fails after registering deregisters before unmapping; after revert the
# old code unwinds as before, and once the region is unmapped the unwinder
# finds no FDE for its addresses (a stale one would crash the lookup).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch unwind "$T/u.hpatch" --key "$T/k.key"
start_target "$HP_TD/unwind-v1" "$T/u.log"
pid=$TARGET_PID

# last_round LOG: the newest complete "round" line.
last_round() { grep '^round ' "$T/u.log" | tail -n 1; }
field() { sed -n "s/.* $1=\([0-9-]*\).*/\1/p" <<<"$2"; }
# wait_round PATTERN: a round printed after now that matches.
wait_round() { wait_round_in "$T/u.log" "$1"; }
alive() { kill -0 "$pid" 2>/dev/null; }
not() { ! "$@"; }
regions() { grep -c . <("$HPATCH" status -p "$pid" 2>/dev/null | grep 'patch:') || true; }

wait_round 'caller=1'
old=$(last_round)
frames=$(field frames "$old")
check "v1: caller catches, exception passes, catcher catches ($old)" \
	grep -q 'caller=1 outer=100 catcher=10 .* guards=2 fde=0' <<<"$old"

# A failed apply after the registration: deregistered, then unmapped
# (a stale registration of unmapped memory would crash the next throw).
HPATCH_FAULT=stop expect_exit 1 "apply failing at the stop is undone" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/u.hpatch"
check "no region left after the failed apply" \
	bash -c "! grep -q 'patch:' <('$HPATCH' status -p $pid 2>/dev/null)"
check "still throwing and catching after the undo" wait_round 'caller=1 outer=100'

expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/u.hpatch"
check "patched thrower's exception caught by its caller" wait_round 'caller=2'
new=$(last_round)
check "exception through a patched frame, its destructor run ($new)" \
	grep -q 'outer=100 .* guards=2' <<<"$new"
check "patched function catches ($new)" grep -q 'catcher=20' <<<"$new"
check "backtrace() in patched code lists every frame ($frames before)" \
	test "$(field frames "$new")" = $((1000 + frames))
check "the unwinder finds the patched code's FDE" grep -q 'fde=1' <<<"$new"
# perf's map of the process: each patched function's new code, by name.
map=/tmp/perf-$pid.map
check "perf map has the 5 functions" \
	test "$(grep -c ' \[hpatch:u\]$' "$map" 2>/dev/null)" = 5
check "perf map names _Z7throweri at its new code" \
	grep -Eq '^[0-9a-f]+ [0-9a-f]+ _Z7throweri \[hpatch:u\]$' "$map"
start=$(awk '$3 == "_Z7throweri" {print $1}' "$map")
# in_anon_map PID ADDR: ADDR (hex) lies in an anonymous mapping of PID.
in_anon_map() {
	local range _ path
	while read -r range _ _ _ _ path; do
		[ -z "$path" ] || continue
		if ((16#$2 >= 16#${range%-*} && 16#$2 < 16#${range#*-})); then
			return 0
		fi
	done <"/proc/$1/maps"
	return 1
}
check "that code is in an anonymous region of the process" \
	in_anon_map "$pid" "$start"
check "perf map owned by the process's user" \
	test "$(stat -c %u "$map")" = "$(stat -c %u "/proc/$pid")"

kill -USR1 "$pid"
for _ in $(seq 100); do grep -q 'worker joined' "$T/u.log" && break; sleep 0.05; done
check "cancelled inside patched code: cleanup handler ran" grep -q 'cleanup ran' "$T/u.log"
check "cancelled thread joined" grep -q 'worker joined' "$T/u.log"

expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "after revert: old code throws and unwinds again" \
	wait_round "caller=1 outer=100 catcher=10 frames=$frames guards=2"
check "region unmapped after revert" \
	collected "$pid" not in_anon_map "$pid" "$start"
check "no stale FDE: none found for the freed code, no crash" wait_round 'fde=0'
check "target alive" alive
check "never terminated" bash -c "! grep -q terminate '$T/u.log'"
finish
