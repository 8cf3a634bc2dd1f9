#!/usr/bin/env bash
# Issue 14, case 6: a thread that no interrupt stops (waiting for a vfork
# child, in uninterruptible sleep on a hung NFS server) must not freeze
# the others: the stop itself is bounded, every thread is let go, and
# after --timeout hpatch gives up (exit 4) naming the thread and its
# state. The thread is left to run on once it wakes.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
open_conn 4 "$TARGET_PORT"

echo "waitchild 4000" >&3 # a thread of the target waits 4 s for a child
sleep 0.3
start=$(date +%s%N)
"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 1000 "$T/p.hpatch" \
	>"$T/hp.out" 2>"$T/hp.err" &
hp=$!
sleep 0.5
# Meanwhile the other threads run: a second connection is answered at
# once, not when the child exits.
echo "price 1" >&4
IFS= read -r -t 1 answer <&4 || answer=
check "the other threads answer within a second while hpatch tries" \
	test "$answer" = 10
wait "$hp" && rc=0 || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "gives up busy (exit $rc)" test "$rc" -eq 4
check "within --timeout and a little ($ms ms)" test "$ms" -lt 2500
check "names the thread that would not stop, and its state" \
	grep -qE "pid $pid: tid [0-9]+ would not stop \(state [A-Z]" "$T/hp.err"
IFS= read -r -t 6 child <&3 || child=
check "the waiting thread ran on when its child exited ($child)" test -n "$child"
check "still v1" test "$(ask 4 version)" = v1
expect_exit 0 "with nothing in the way, it applies" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 4 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
exec 3>&- 4>&-
finish
