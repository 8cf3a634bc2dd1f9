#!/usr/bin/env bash
# A stop waits for each thread to get a CPU and reach it; on a busy host
# behind every runnable task there. So the threads of a process of at
# most 64 run SCHED_FIFO from the start of the stop to its end, and
# each gets its own policy back after, from hpatch or, if hpatch is
# killed meanwhile, from its guard process; a larger process's are never
# raised (each raise costs system calls before the window, and a slot of
# the guard's).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc-v1" "$T/u.hpatch" --key "$T/k.key" --id "u-$$"
policy() { chrt -p "$1" 2>/dev/null | sed -n 's/.*policy: //p'; }
# all_are PID POLICY: every thread of PID runs POLICY.
all_are() {
	local t
	for t in /proc/"$1"/task/*; do
		[ "$(policy "${t##*/}")" = "$2" ] || return 1
	done
}
# stopped PID: every thread of PID in a ptrace stop (hpatch's window).
stopped() {
	local t
	for t in /proc/"$1"/task/*; do
		[ "$(awk '{ print $3 }' "$t/stat" 2>/dev/null)" = t ] || return 1
	done
}
FIFO="SCHED_FIFO|SCHED_RESET_ON_FORK"

start_target chrt "$T/a.log" -b 0 "$T/svc-v1" 3
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
ask 3 version >/dev/null
nr=$(ls "/proc/$pid/task" | wc -l)
check "the target's $nr threads run SCHED_BATCH" all_are "$pid" SCHED_BATCH

# Killed while it holds them stopped (its stop delayed 3 s).
HPATCH_DELAY=stop:3000 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/u.hpatch" >"$T/killed.out" 2>"$T/killed.err" &
hp=$!
check "stopped: every thread raised" wait_until 5 all_are "$pid" "$FIFO"
kill -9 "$hp"
wait "$hp" 2>/dev/null || true
check "hpatch killed in the stop: every thread SCHED_BATCH again" \
	wait_until 5 all_are "$pid" SCHED_BATCH
check "the guard said so" grep -q "its patcher ended while it ran raised" "$T/killed.err"
check "the target serves, old code" test "$(ask 3 version)" = v1

# To the end: raised in the stop, given back by hpatch.
HPATCH_DELAY=stop:500 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/u.hpatch" >"$T/end.out" 2>"$T/end.err" &
hp=$!
check "an apply to the end: raised in its stop" wait_until 5 all_are "$pid" "$FIFO"
wait "$hp" && rc=0 || rc=$?
check "it succeeds (exit $rc)" test "$rc" -eq 0
check "every thread SCHED_BATCH after it" all_are "$pid" SCHED_BATCH
check "the target runs v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "every thread SCHED_BATCH after the revert" all_are "$pid" SCHED_BATCH
check "the target runs v1" test "$(ask 3 version)" = v1

# Threads of other policies in one process: a real-time one (SCHED_RR,
# priority 5) runs before any raised thread already and is left as it is
# (a raise would lower it); SCHED_IDLE and a nice value come back whole.
start_target "$T/svc-v1" "$T/m.log" 3
mixed=$TARGET_PID
open_conn 5 "$TARGET_PORT"
ask 5 version >/dev/null
set -- $(ls "/proc/$mixed/task" | sort -n)
rt=$2 idle=$3 niced=$4
chrt -r -p 5 "$rt"
chrt -i -p 0 "$idle"
renice -n 7 -p "$niced" >/dev/null
prio() { chrt -p "$1" 2>/dev/null | sed -n 's/.*priority: //p'; }
nice_of() { awk '{ print $19 }' "/proc/$mixed/task/$1/stat"; }
HPATCH_DELAY=stop:1500 "$HPATCH" apply -p "$mixed" --trust "$T/trust" \
	"$T/u.hpatch" >"$T/mixed.out" 2>"$T/mixed.err" &
hp=$!
check "stopped: the SCHED_IDLE and niced threads raised" wait_until 5 \
	bash -c "[ \"\$(chrt -p $idle | sed -n 's/.*policy: //p')\" = '$FIFO' ] &&
		[ \"\$(chrt -p $niced | sed -n 's/.*policy: //p')\" = '$FIFO' ]"
check "... the SCHED_RR one not: SCHED_RR, priority 5" \
	test "$(policy "$rt") $(prio "$rt")" = "SCHED_RR 5"
wait "$hp" && rc=0 || rc=$?
check "that apply succeeds (exit $rc)" test "$rc" -eq 0
check "after: SCHED_RR 5 kept" test "$(policy "$rt") $(prio "$rt")" = "SCHED_RR 5"
check "after: SCHED_IDLE back" test "$(policy "$idle")" = SCHED_IDLE
check "after: SCHED_OTHER back, nice 7 kept" \
	test "$(policy "$niced") $(nice_of "$niced")" = "SCHED_OTHER 7"
check "the mixed target runs v2" test "$(ask 5 version)" = v2

# 82 threads: stopped at their own policy.
start_target "$T/svc-v1" "$T/b.log" 40
big=$TARGET_PID
open_conn 4 "$TARGET_PORT"
ask 4 version >/dev/null
HPATCH_DELAY=stop:1500 "$HPATCH" apply -p "$big" --trust "$T/trust" \
	"$T/u.hpatch" >"$T/big.out" 2>"$T/big.err" &
hp=$!
check "$(ls "/proc/$big/task" | wc -l) threads stopped" wait_until 5 stopped "$big"
check "... each at SCHED_OTHER" all_are "$big" SCHED_OTHER
wait "$hp" && rc=0 || rc=$?
check "that apply succeeds (exit $rc)" test "$rc" -eq 0
check "the large target runs v2" test "$(ask 4 version)" = v2
finish
