#!/usr/bin/env bash
# Issue 14, case 11: one patcher per process at a time. A second hpatch
# on a process another one holds waits up to --timeout for it, then exits
# 4 naming the holder; given time, it goes on after the first (and finds
# the patch applied). The lock is a file under the state directory keyed
# by pid and start time, so a reused pid is another lock; the kernel's
# /proc/locks names its holder.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch

# The first holds the process 1.5 s (in its apply, before the stop).
HPATCH_DELAY=mmap:1500 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/p.hpatch" >"$T/first.out" 2>"$T/first.err" &
first=$!
lock=$HPATCH_STATE_DIR/locks/$pid-$(awk '{ print $22 }' "/proc/$pid/stat").lock
for _ in $(seq 100); do [ -e "$lock" ] && break; sleep 0.05; done
check "the lock is a file keyed by pid and start time" test -e "$lock"
# Empty: a page written to it would make its unlink wait for writeback
# (on a busy disk, hundreds of ms at every apply).
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
check "no lock file left behind" test -z "$(ls "$HPATCH_STATE_DIR/locks" 2>/dev/null)"
check "v1" test "$(ask 3 version)" = v1
exec 3>&-
finish
