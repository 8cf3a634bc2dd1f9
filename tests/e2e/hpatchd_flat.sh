#!/usr/bin/env bash
# Processes come and go: hpatchd patches each short-lived one of the
# patched build and forgets it when it exits; its memory and file
# descriptors stay flat from one batch of processes to the next; an exec
# of the patched program does not make it look at every process.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_quick flat
agent_policy '[apply]' 'rescan = 60s' # no periodic scan during the test
agent_install "$T/quick.hpatch"
AGENT_ARGS=(--debug=timing) # says when it scans every process
start_agent

# batch S: 50 processes a second for S seconds, each waiting (up to 10 s)
# to see its patched code.
batch() {
	"$HP_BUILD/bench/bench_agent_storm" 50 "$1" "$T/batch.out" "$T/bin/quick-v1" >/dev/null
}
# The fewest of a few looks: a rescan opens files for a moment.
fds() {
	for _ in $(seq 10); do ls "/proc/$AGENT_PID/fd" | wc -l; sleep 0.1; done | sort -n | head -1
}
rss() { awk '/^VmRSS/ {print $2}' "/proc/$AGENT_PID/status"; }
tracks() { grep -c '^track ' "$HPATCH_STATE_DIR/hpatchd.view" || true; }
batch 2
check "first batch: every process patched" test "$(grep -c '^exec [0-9]' "$T/batch.out")" -eq 100
fd1=$(fds) rss1=$(rss)
: >"$T/batch.out"
batch 4
check "second batch: every process patched" test "$(grep -c '^exec [0-9]' "$T/batch.out")" -eq 200
no_tracks() { test "$(tracks)" -eq 0; }
check "exited processes are forgotten" wait_until 10 no_tracks
fd2=$(fds) rss2=$(rss)
check "file descriptors flat ($fd1 -> $fd2)" test "$fd2" -le "$fd1"
# The first, and one per lost batch of process events (ENOBUFS).
scans=$(grep -c "full scan:" "$T/hpatchd.log")
lost=$(grep -c "events lost" "$T/hpatchd.log" || true)
check "300 execs, yet no scan of every process for them ($scans scans, $lost losses)" \
	test "$scans" -le $((1 + lost))
check "memory flat (${rss1} -> ${rss2} KiB)" test "$rss2" -le $((rss1 + 256))
finish
