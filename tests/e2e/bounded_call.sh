#!/usr/bin/env bash
# Issue 14, case 6 (the waits inside the stop): a system call hpatch
# injects, or a single step, that does not come back within its bound
# (mmap asleep in the kernel behind a hung file system, say) is not
# waited for without end. hpatch says which thread and how it was left,
# exits busy (4), and puts the thread's registers and signal mask back
# as soon as the call returns while it still holds it: the target runs
# on unharmed, and a later apply succeeds. (HPATCH_FAULT=call makes the
# first injected call's bound pass at once.)
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
HPATCH_FAULT=call expect_exit 4 "an injected call past its bound: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "names the thread, inside hpatch's call" \
	grep -q "tid $pid: still inside hpatch's injected system call" "$T/last.err"
# The time it was waited for, not the call's bound (1000 ms; the step of
# a frozen thread is bounded by a stop's): here it passed at once.
check "says for how long: at once" grep -q "injected system call after 0 ms" "$T/last.err"
check "says how it was left" grep -q "registers and signal mask are put back" "$T/last.err"
check "the target runs" kill -0 "$pid"
check "old code, answering as before" test "$(ask 3 version)" = v1
check "its signal mask is its own again" \
	test "$(awk '/^SigBlk:/ { print $2 }' "/proc/$pid/status")" = 0000000000000000
check "no tracer left" test "$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")" = 0
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
exec 3>&-
finish
