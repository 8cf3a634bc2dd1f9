#!/usr/bin/env bash
# A target of 64 threads, stopped by two tracers (runtime/rt_transition.c,
# "Two tracers"): the helper thread holds the first half, the lowest tids
# after the leader's. One of those frozen (v1's freezer takes single
# threads) does not stop: busy at once (exit 4), that thread named, every
# thread let go, none left traced (the helper ends, and the kernel lets go
# of what it held); thawed, the patch applies, and again every thread runs
# untraced.
. "$(dirname "$0")/lib.bash"
require_ptrace

thread_freezer
make_key k
build_patch spin "$T/p.hpatch" --key "$T/k.key" --id p
# (At the lowest priority: 64 spinning threads slow every command of the
# test otherwise.)
nice -n 19 "$HP_TD/spin-v1" 64 outside >/dev/null 2>&1 &
pid=$!
PIDS+=("$pid")
check "64 threads" wait_until 5 bash -c "[ \$(ls /proc/$pid/task | wc -l) -eq 64 ]"
untraced() {
	local t
	for t in $(ls "/proc/$pid/task"); do
		grep -q '^TracerPid:[[:space:]]*0$' "/proc/$pid/task/$t/status" 2>/dev/null || return 1
	done
}
frozen() { [ "$(cat "$FZ/freezer.state")" = FROZEN ]; }
# The first thread made: in the helper's half.
tid=$(ls "/proc/$pid/task" | sort -n | sed -n 2p)
echo "$tid" >"$FZ/tasks"
echo FROZEN >"$FZ/freezer.state"
check "tid $tid alone frozen" wait_until 5 frozen

start=$(date +%s%N)
expect_exit 4 "apply -p: busy, a thread of the helper's frozen" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/p.hpatch"
ms=$((($(date +%s%N) - start) / 1000000))
check "given up at once ($ms ms)" test "$ms" -lt 2000
check "the helper thread traced half" grep -q "pid $pid: 64 threads, the helper thread traces 32" "$T/last.err"
check "says why" grep -q "pid $pid: tid $tid would not stop (.*): its cgroup is frozen; every thread was let go, nothing changed" "$T/last.err"
check "no thread traced" wait_until 2 untraced
[ "$FAILED" = 0 ] || cat "$T/last.err" >&2

thaw_all
expect_exit 0 "thawed: applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "no thread traced after it" wait_until 2 untraced
check "pid $pid runs" kill -0 "$pid"
finish
