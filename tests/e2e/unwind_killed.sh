#!/usr/bin/env bash
# hpatch killed (-9) inside its call of the target's unwinder
# (docs/UNWIND.md, "Killed inside a call"): the kernel lets the thread go
# inside the call, with whatever hpatch left it. The call returns through
# a signal frame of the thread's own registers, mask and FPU state,
# written before it runs, to the C library's signal return: the thread
# goes on as it was. Killed just after the call is set (HPATCH_DELAY
# step call-start), just after it is resumed (call-run: it returns
# meanwhile, stopped at its rt_sigreturn), and while the deregistration's
# free() waits for the arena's lock a thread of the target holds
# (malloc_stats on a full FIFO, as unwind_lock_wait.sh); the first two
# in a process of one thread too, held stopped. Each time the
# target lives, nothing traces it, no thread's signal is left blocked, its
# rounds and their backtraces go on (libgcc's object_mutex not left held),
# and a later hpatch applies and reverts the patch: the region of a call
# killed midway stays mapped, unknown to it (its magic cleared for the
# call's length), since its table may be registered or not. Before: the
# call returned to address 0 and the target died of a SIGSEGV.
. "$(dirname "$0")/lib.bash"
require_ptrace

untraced() { ! grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/"$1"/task/*/status; }
unblocked() { ! grep -q '^SigBlk:[[:space:]]*0*[1-9a-f]' /proc/"$1"/task/*/status; }
inside() { grep -q "test delay: .* at step '$1'" "$2" 2>/dev/null; }
# in_call PID HP: a thread of PID traced by HP waits on a futex (its call
# inside free(), waiting for the arena's lock).
in_call() {
	local s
	for s in /proc/"$1"/task/*; do
		grep -q "^TracerPid:[[:space:]]*$2\$" "$s/status" 2>/dev/null &&
			read -r nr _ <"$s/syscall" && [ "$nr" = 202 ] && return 0
	done
	return 1
}

# lives NAME V: the target, its hpatch killed, running code of sum V.
lives() {
	check "$1: nothing traces pid $pid" wait_until 5 untraced "$pid"
	check "$1: pid $pid runs" kill -0 "$pid"
	check "$1: no thread's signal left blocked" wait_until 5 unblocked "$pid"
	check "$1: rounds and backtraces go on" wait_round_in "$log" "sum=$2 frames=[1-9]"
}
# later NAME: a later hpatch applies the patch and reverts it.
later() {
	expect_exit 0 "$1: a later apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	check "$1: new code, unwinding" wait_round_in "$log" "sum=$((v1 + 200 * 4096)) frames=[1-9]"
	expect_exit 0 "$1: then a revert" "$HPATCH" revert -p "$pid"
	check "$1: old code again" wait_round_in "$log" "sum=$v1 frames=[1-9]"
	check "$1: pid $pid runs" kill -0 "$pid"
}
# killed_at NAME STEP: the apply killed at STEP of its registration call.
killed_at() {
	local err=$T/$1.err hp
	log=$T/$1.log
	mkfifo "$T/$1.fifo"
	start_target "$HP_TD/unwind_lock-v1" "$log" "$T/$1.fifo" idle
	pid=$TARGET_PID
	check "$1: rounds" wait_round_in "$log" 'sum='
	v1=$(grep '^round ' "$log" | tail -n 1 | sed -n 's/.* sum=\([0-9]*\).*/\1/p')
	HPATCH_DELAY=$2:4000 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		"$T/p.hpatch" >/dev/null 2>"$err" &
	hp=$!
	check "$1: hpatch held at $2" wait_until 10 inside "$2" "$err"
	kill -9 "$hp" 2>/dev/null || true
	wait "$hp" 2>/dev/null || true
	lives "$1" "$v1"
	later "$1"
	kill -9 "$pid" 2>/dev/null || true
}

# alone STEP: a process of one thread (testdata cxx), held stopped from
# the mapping to the switch, makes the call (docs/LIFECYCLE.md, "Stops"):
# the apply killed at STEP of it.
alone() {
	local err=$T/alone.$1.err hp
	log=$T/alone.$1.log
	start_target "$HP_TD/cxx-v1" "$log"
	pid=$TARGET_PID
	check "alone $1: v1" wait_until 5 grep -q '^result rect area=1000 ' "$log"
	HPATCH_DELAY=$1:4000 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		"$T/c.hpatch" >/dev/null 2>"$err" &
	hp=$!
	check "alone $1: hpatch held at $1" wait_until 10 inside "$1" "$err"
	kill -9 "$hp" 2>/dev/null || true
	wait "$hp" 2>/dev/null || true
	check "alone $1: nothing traces pid $pid" wait_until 5 untraced "$pid"
	check "alone $1: no signal left blocked" wait_until 5 unblocked "$pid"
	expect_exit 0 "alone $1: a later apply" "$HPATCH" apply -p "$pid" \
		--trust "$T/trust" "$T/c.hpatch"
	check "alone $1: v2" wait_until 5 grep -q '^result rect area=999 ' "$log"
	expect_exit 0 "alone $1: then a revert" "$HPATCH" revert -p "$pid"
	check "alone $1: v1 again" wait_until 5 bash -c \
		"[ \$(grep -c '^result rect area=1000 ' '$log') = 2 ]"
	check "alone $1: pid $pid runs" kill -0 "$pid"
	kill -9 "$pid" 2>/dev/null || true
}

make_key k
build_patch unwind_lock "$T/p.hpatch" --key "$T/k.key" --id p
killed_at start call-start
killed_at run call-run
build_patch cxx "$T/c.hpatch" --key "$T/k.key" --id c
alone call-start
alone call-run

# The deregistration waits in free() for the arena's lock: killed there.
arena_held w idle
"$HPATCH" revert -p "$pid" --timeout 20000 >"$T/w.out" 2>"$T/w.err" &
hp=$!
check "w: the deregistration waits for the arena's lock" wait_until 10 in_call "$pid" "$hp"
kill -9 "$hp" 2>/dev/null || true
wait "$hp" 2>/dev/null || true
check "w: pid $pid runs, waiting" kill -0 "$pid"
arena_drain w
lives w "$v1"
expect_exit 3 "w: a later hpatch finds no patch (the region unknown)" \
	"$HPATCH" revert -p "$pid"
later w
finish
