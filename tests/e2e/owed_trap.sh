#!/usr/bin/env bash
# Issue 14, case 6 (the owed step): an injected system call's single step
# that outlives its bound is interrupted and its thread owed its registers
# and signal mask. If the step ended meanwhile, its SIGTRAP is hpatch's,
# not the program's: it must never reach the target (delivered, it kills
# it). Two orders, each made certain by a fault hook:
#   call-late:   the step's trap stop was reported just before the bound
#                passed (once a raced signal, passed on to the target);
#   call-queued: the bound passed while the call ran in the kernel, so its
#                trap was queued behind the interrupt's stop, and our
#                next interrupt stopped it once more ahead of the trap
#                (once taken by the target right after the detach).
# Either way the target must run on, unharmed, its own mask back.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
for fault in call-late call-queued call-late call-queued; do
	HPATCH_FAULT=$fault expect_exit 4 "$fault: an injected call past its bound: busy" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	check "$fault: names the thread, inside hpatch's call" \
		grep -q "tid $pid: still inside hpatch's injected system call" "$T/last.err"
	check "$fault: old code, answering as before" test "$(ask 3 version)" = v1
	sleep 0.1
	check "$fault: the target runs" kill -0 "$pid"
	check "$fault: its signal mask is its own again" \
		test "$(awk '/^SigBlk:/ { print $2 }' "/proc/$pid/status")" = 0000000000000000
	check "$fault: no signal left pending" \
		test "$(awk '/^SigPnd:/ { print $2 }' "/proc/$pid/status")" = 0000000000000000
	check "$fault: no tracer left" \
		test "$(awk '/^TracerPid:/ { print $2 }' "/proc/$pid/status")" = 0
done
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
exec 3>&-
finish
