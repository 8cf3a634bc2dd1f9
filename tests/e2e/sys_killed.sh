#!/usr/bin/env bash
# hpatch killed (-9) inside one of its injected system calls (the
# region's mmap, the first; docs/AGENT.md, "Killed"): the kernel lets the
# thread go where hpatch left it. The call is made at the C library's
# "syscall; ret" and returns to its signal restorer over a frame of the
# thread's own registers, mask and FPU state, never single-stepped: killed
# just after the call is set (HPATCH_DELAY step sys-start), at its entry's
# stop (sys-run: the thread makes the call as hpatch dies) or at its
# exit's (sys-exit), the thread goes on as it was. Each in a process whose
# worker serves (the call runs in a thread stopped inside its own system
# call, which restarts) and in a one-thread process (held stopped). Each
# time the target lives, nothing traces it, no signal is left blocked, its
# scheduling policy is its own again, it answers with its old code, and a
# later hpatch applies the patch. Before (the call single-stepped through
# the vDSO's "syscall", then parked): the target died of a SIGTRAP, or ran
# on from the vDSO with hpatch's registers.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p
policy() { chrt -p "$1" | sed -n 's/.*policy: //p'; }
inside() { grep -q "test delay: .* at step '$1'" "$2" 2>/dev/null; }
policy_is() { test "$(policy "$1")" = "$2"; }

# killed_at NAME STEP WORKERS: the apply to a svc-v1 of WORKERS worker
# threads killed at STEP of its first system call.
killed_at() {
	local name=$1 step=$2 err=$T/$1.err hp p0
	start_target "$HP_TD/svc-v1" "$T/$name.log" "$3"
	pid=$TARGET_PID
	open_conn 3 "$TARGET_PORT"
	p0=$(policy "$pid")
	HPATCH_DELAY=$step:4000 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		"$T/p.hpatch" >/dev/null 2>"$err" &
	hp=$!
	check "$name: hpatch held at $step" wait_until 10 inside "$step" "$err"
	kill -9 "$hp" 2>/dev/null || true
	wait "$hp" 2>/dev/null || true
	sleep 0.3
	unharmed "$pid"
	check "$name: scheduling policy its own again ($p0)" \
		wait_until 5 policy_is "$pid" "$p0"
	check "$name: old code, answering as before" test "$(ask 3 version)" = v1
	expect_exit 0 "$name: then applied" "$HPATCH" apply -p "$pid" \
		--trust "$T/trust" "$T/p.hpatch"
	check "$name: v2" test "$(ask 3 version)" = v2
	check "$name: pid $pid runs" kill -0 "$pid"
	exec 3>&-
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

for step in sys-start sys-run sys-exit; do
	killed_at "worker-$step" "$step" 1
	killed_at "alone-$step" "$step" 0
done
finish
