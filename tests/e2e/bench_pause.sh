#!/usr/bin/env bash
# bench_pause (bench/pause.c) prints its lines, and leaves nothing behind
# however it ends: its spinning target dies with it (killed by a closed
# pipe mid-run, say), and the perf maps written for its targets go.
. "$(dirname "$0")/lib.bash"
require_ptrace

BENCH=$HP_BUILD/bench/bench_pause
build_patch spin "$T/spin.hpatch"
# A copy of its own (same build-id), to find its processes by path.
cp "$HP_TD/spin-v1" "$T/spin"
spins() { pgrep -f "^$T/spin" || true; }

expect_exit 0 "a run with 2 threads" "$BENCH" "$T/spin" "$T/spin.hpatch" 2
check "a line for the threads in the functions" \
	grep -q '^threads=2 pause_us=[0-9]* floor_us=[1-9]' "$T/last.out"
check "a line with every stack checked" \
	grep -q '^threads=2 stacks=checked pause_us=[0-9]* floor_us=[1-9]' "$T/last.out"
check "no target left" test -z "$(spins)"
# Its records (anti-rollback) in the test's state directory: none of
# another run's patches refused for this one's.
check "its state in HPATCH_STATE_DIR" test -n "$(ls -A "$HPATCH_STATE_DIR")"

# Its output closed before its first line: the first write kills it, in
# the middle of a run, its target running 8 threads.
"$BENCH" "$T/spin" "$T/spin.hpatch" 8 2>"$T/pipe.err" | true || true
left=
for _ in $(seq 50); do
	left=$(spins)
	[ -z "$left" ] && break
	sleep 0.1
done
check "its target died with it (left: ${left:-none})" test -z "$left"
for p in $left; do kill -9 "$p"; done
# The map written for the target it left mid-run (spin's lines alone).
for m in /tmp/perf-*.map; do
	p=${m#/tmp/perf-}
	p=${p%.map}
	[ -d "/proc/$p" ] || ! grep -q ' \[hpatch:spin\]$' "$m" ||
		grep -qv ' \[hpatch:spin\]$' "$m" || rm -f "$m"
done
finish
