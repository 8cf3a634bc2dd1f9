#!/usr/bin/env bash
# Issue 14, case 11: one patcher per process at a time. A second hpatch
# on a process another one holds waits up to --timeout for it, then exits
# 4 naming the holder; given time, it goes on after the first (and finds
# the patch applied). The lock is a byte of one file under the state
# directory, at an offset made of pid and start time, so a reused pid is
# another lock; the kernel names its holder.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch

# The first holds the process 1.5 s (in its apply, before the stop).
HPATCH_DELAY=mmap:1500 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/p.hpatch" >"$T/first.out" 2>"$T/first.err" &
first=$!
lock=$HPATCH_STATE_DIR/locks/targets
at=$(( pid << 32 | ($(awk '{ print $22 }' "/proc/$pid/stat") & 0xffffffff) ))
# held_at: the pids /proc/locks says hold a write lock on $lock's byte $at.
held_at() {
	local ino
	ino=$(stat -c %i "$lock" 2>/dev/null) || return 0
	awk -v ino=":$ino" -v at="$at" '$2 == "POSIX" && $4 == "WRITE" &&
		substr($6, length($6) - length(ino) + 1) == ino &&
		$7 == at { print $5 }' /proc/locks
}
for _ in $(seq 100); do [ -n "$(held_at)" ] && break; sleep 0.05; done
check "the lock is the byte of pid and start time, held by the first" \
	test "$(held_at)" = "$first"
check "the lock file holds no data" test ! -s "$lock"
expect_exit 4 "a second apply meanwhile: busy after --timeout" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 300 "$T/p.hpatch"
check "names the holder" grep -q "pid $pid: held by hpatch (pid $first)" "$T/last.err"
check "... and what to do" grep -q "hint:.*retry" "$T/last.err"
expect_exit 4 "a revert meanwhile: busy too" "$HPATCH" revert -p "$pid" --timeout 300
expect_exit 3 "a third with time enough waits, then finds it applied" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 5000 "$T/p.hpatch"
wait "$first" && rc=0 || rc=$?
check "the first applied (exit $rc)" test "$rc" -eq 0
check "v2" test "$(ask 3 version)" = v2
check "one patch in the process" test "$("$HPATCH" status -p "$pid" --json | grep -o '"state":"active"' | wc -l)" -eq 1
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "no lock left held" test -z "$(held_at)"
check "v1" test "$(ask 3 version)" = v1
exec 3>&-
finish
