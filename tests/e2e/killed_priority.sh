#!/usr/bin/env bash
# hpatch raises the thread that runs its calls to SCHED_FIFO while it
# maps the patch (on a busy host it would wait milliseconds for each turn
# on a CPU). Killed there (kill -9, the OOM killer, a crash), hpatch
# cannot restore it: its guard process does, and the target is left with
# the policy it had (here SCHED_BATCH, and SCHED_OTHER with a nice value),
# never real-time for good. Both for `apply -p` and for `apply --all`
# (--jobs 1: in hpatch itself, no worker forked: hpatch_jobs.c).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc-v1" "$T/u.hpatch" --key "$T/k.key" --id "u-$$"
policy() { chrt -p "$1" | sed -n 's/.*policy: //p'; }
# raised TID: until hpatch has raised it (its calls run delayed).
raised() {
	for _ in $(seq 250); do
		[ "$(policy "$1")" = "SCHED_FIFO|SCHED_RESET_ON_FORK" ] && return 0
		sleep 0.02
	done
	return 1
}
back_to() { # back_to TID POLICY: within 5 s
	for _ in $(seq 250); do
		[ "$(policy "$1")" = "$2" ] && return 0
		sleep 0.02
	done
	echo "tid $1: $(policy "$1"), want $2" >&2
	return 1
}

# guards PID: the guard processes of hpatch PID, once named (forked, a
# guard is a child named hpatch until it runs: late on a busy host).
guards() { pgrep -P "$1" -x hpatch-guard || true; }
has_guard() { test -n "$(guards "$1")"; }
gone() { for g in "$@"; do ! kill -0 "$g" 2>/dev/null || return 1; done; }

# kill_during NAME HPATCH_ARGS...: hpatch killed while it holds the
# target raised (its mprotect delayed 3 s), its guard left to run.
kill_during() {
	local name=$1 hp g; shift
	HPATCH_DELAY=mprotect:3000 "$HPATCH" apply --trust "$T/trust" "$@" \
		"$T/u.hpatch" >"$T/$name.out" 2>"$T/$name.err" &
	hp=$!
	check "$name: the thread is raised for the calls" raised "$pid"
	check "$name: a guard process watches" wait_until 5 has_guard "$hp"
	g=$(guards "$hp")
	kill -9 "$hp"
	wait "$hp" 2>/dev/null || true
	check "$name: the guard is gone after" wait_until 5 gone $g
}

start_target chrt "$T/a.log" -b 0 "$T/svc-v1" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "the target runs SCHED_BATCH" test "$(policy "$pid")" = SCHED_BATCH
kill_during apply-p -p "$pid"
check "apply -p killed: SCHED_BATCH given back" back_to "$pid" SCHED_BATCH
check "the guard said so" grep -q "tid $pid: its patcher ended while it ran raised" "$T/apply-p.err"
check "the target still serves, old code" test "$(ask 3 version)" = v1
# Its main thread, which ran the calls, waits in accept(): a connection
# ends that wait. Let go with the trap flag of hpatch's last step still
# set, it would trap there (SIGTRAP, no tracer) and kill the process.
exec 4<>"/dev/tcp/127.0.0.1/$TARGET_PORT"
check "a new connection is served (the calls' thread takes no trap)" \
	test "$(ask 4 version)" = v1
exec 4>&-
check "the target runs" kill -0 "$pid"

# The same for an --all.
renice -n 5 -p "$pid" >/dev/null
chrt -o -p 0 "$pid"
kill_during all --all --jobs 1
check "--all killed: SCHED_OTHER given back" back_to "$pid" SCHED_OTHER
check "its nice value kept" test "$(ps -o ni= -p "$pid" | tr -d ' ')" = 5
check "the target still serves, old code" test "$(ask 3 version)" = v1

# Not killed: the policy is the target's again after the apply, and the
# guard ends with hpatch.
HPATCH_DELAY=mprotect:500 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	"$T/u.hpatch" >"$T/end.out" 2>"$T/end.err" &
hp=$!
check "an apply to the end: raised for the calls" raised "$pid"
check "a guard process watches" wait_until 5 has_guard "$hp"
g=$(guards "$hp")
wait "$hp" && rc=0 || rc=$?
check "it succeeds (exit $rc)" test "$rc" -eq 0
check "SCHED_OTHER after it" test "$(policy "$pid")" = SCHED_OTHER
check "the target runs v2" test "$(ask 3 version)" = v2
check "its guard ended with it" wait_until 5 gone $g

# A SCHED_DEADLINE thread runs before any SCHED_FIFO one, and its runtime
# and period cannot be given back by sched_setscheduler: never raised.
start_target "$T/svc-v1" "$T/dl.log" 1
dl=$TARGET_PID
for t in /proc/"$dl"/task/*; do
	chrt -d --sched-runtime 1000000 --sched-deadline 10000000 \
		--sched-period 10000000 -p 0 "${t##*/}"
done
expect_exit 0 "an apply to a SCHED_DEADLINE target" \
	"$HPATCH" apply -p "$dl" --trust "$T/trust" "$T/u.hpatch"
check "it is SCHED_DEADLINE after" test "$(policy "$dl")" = SCHED_DEADLINE
check "its runtime/deadline/period kept" \
	bash -c "chrt -p $dl | grep -q 'parameters: 1000000/10000000/10000000'"

# hpatchd's guard lives as long as hpatchd, and may be killed first (the
# OOM killer counts the memory it shares with hpatchd as its own): the
# next thread raised gets a guard again, never none.
agent_policy '[apply]' 'retry = 100ms'
unique_build svc "$T/bin/svc-v1" "$T/d.hpatch" --key "$T/k.key" --id "d-$$"
"$HPATCH" install --store "$AGENT_STORE" --trust "$T/trust" "$T/d.hpatch" >/dev/null
start_target "$T/bin/svc-v1" "$T/p1.log" 1
p1=$TARGET_PID
start_target "$T/bin/svc-v1" "$T/p2.log" 1
p2=$TARGET_PID
start_agent HPATCH_DELAY=mprotect:1500
either() { [ "$(policy "$p1")" != SCHED_OTHER ] || [ "$(policy "$p2")" != SCHED_OTHER ]; }
check "hpatchd raises one target" wait_until 5 either
d1=$p1 d2=$p2 # the first raised, the next
[ "$(policy "$p1")" != SCHED_OTHER ] || { d1=$p2; d2=$p1; }
check "hpatchd's guard watches pid $d1" wait_until 5 has_guard "$AGENT_PID"
g=$(guards "$AGENT_PID")
kill -9 $g
check "then it raises pid $d2" raised "$d2"
check "the killed guard reaped" bash -c "! ps -o stat= --ppid $AGENT_PID | grep -q Z"
kill -9 "$AGENT_PID"
check "hpatchd killed: pid $d2 given SCHED_OTHER back" back_to "$d2" SCHED_OTHER
finish
