#!/usr/bin/env bash
# Issue 14, case 2: the target execs while hpatch works on it (a program
# that re-execs itself to reload; a child that forks then execs). The new
# image is not what hpatch prepared for: it must notice, change nothing
# in it, and never deliver a signal its own tracing caused (the SIGTRAP
# the kernel sends a traced thread that execs).
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
# hpatch has attached to every thread (none stopped yet) when, waiting
# there 600 ms, a thread of the target execs the program again.
HPATCH_DELAY=seize:600 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/p.hpatch" >"$T/hp.out" 2>"$T/hp.err" &
hp=$!
for _ in $(seq 200); do # until hpatch holds the threads
	[ "$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")" = "$hp" ] && break
	sleep 0.01
done
check "reexec asked" test "$(ask 3 reexec)" = ok
wait "$hp" && rc=0 || rc=$?
readies() { grep -c ready "$T/svc.log"; }
check "in its new image" wait_until 5 above 1 readies
check "the process lives on ($(readies) ready lines)" kill -0 "$pid"
check "... its image ready once" test "$(readies)" -eq 2
check "not killed by a signal of hpatch's" bash -c "! grep -qi 'trace\|trap\|core' '$T/svc.log'"
check "hpatch noticed the exec (exit $rc)" grep -q "pid $pid: .*exec" "$T/hp.err"
port=$(sed -n 's/.*ready pid=[0-9]* port=\([0-9]*\).*/\1/p' "$T/svc.log" | tail -1)
open_conn 4 "$port"
check "the new image answers, old code" test "$(ask 4 version)" = v1
expect_exit 0 "and can be patched" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 4 version)" = v2
exec 3>&- 4>&-
finish
