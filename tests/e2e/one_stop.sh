#!/usr/bin/env bash
# A process of one thread is patched in one stop: the thread stopped to
# map the patch stays stopped for the switch (runtime/rt_apply.c map_all).
# The switch checks the same things there: that thread inside a function
# is busy, retried in stops of their own until --timeout; a thread born
# before that stop makes the process one of several threads, switched in
# a stop of every thread.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
one_stop="one thread: mapped, and switched in the same stop"
# tasks PID: until the process has N threads (a closed connection's
# thread takes a moment to exit).
tasks() {
	for _ in $(seq 250); do
		[ "$(ls "/proc/$1/task" | wc -l)" -eq "$2" ] && return 0
		sleep 0.02
	done
	return 1
}

# One thread (no workers: the main thread accepts), idle.
start_target "$HP_TD/svc-v1" "$T/svc.log" 0
pid=$TARGET_PID
check "one thread" tasks "$pid" 1
expect_exit 0 "apply to a process of one thread" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/svc.hpatch"
check "mapped and switched in one stop" grep -q "pid $pid: $one_stop" "$T/last.err"
check "... one try, one thread" \
	grep -qzE 'threads: 1\b.*tries: 1\b' "$T/last.out"
check "the audit log has the apply" \
	grep -qE "\"pid\":$pid,.*\"result\":\"ok\".*\"threads\":1\\b" "$T/audit.log"
open_conn 3 "$TARGET_PORT"
check "v2" test "$(ask 3 version)" = v2
check "no EINTR" test "$(ask 3 eintr)" = 0
exec 3>&-
check "one thread again" tasks "$pid" 1
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"

# A thread born before the stop (a connection accepted while hpatch
# prepares): two threads; the new one sleeps in hold(), so the switch,
# which stops both, is busy.
HPATCH_DELAY=mmap:700 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
	--timeout 300 --debug=ptrace "$T/svc.hpatch" >"$T/born.out" 2>"$T/born.err" &
hp=$!
sleep 0.3
open_conn 4 "$TARGET_PORT"
echo "hold 2000" >&4
rc=0
wait "$hp" || rc=$?
check "a thread born meanwhile, in hold(): busy (exit $rc)" test "$rc" -eq 4
check "... naming hold" grep -q "'hold' still in use" "$T/born.err"
check "... not in one stop" bash -c "! grep -q '$one_stop' '$T/born.err'"
check "... nothing left mapped" \
	bash -c "! grep -q patch_id <('$HPATCH' status -p $pid --json)"
IFS= read -r -t 5 held <&4
check "that call finished in v1" test "$held" = "held v1"
exec 4>&-
kill "$pid"

# The one thread inside a patched function: busy in that stop, then
# retried in stops of their own until --timeout; once it has left, the
# same apply succeeds.
start_target "$HP_TD/svc-v1" "$T/holds.log" 0 main-holds 2500
pid=$TARGET_PID
wait_thread "$pid" "$pid" sleep
expect_exit 4 "the one thread in hold(): busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 300 \
	--debug=ptrace "$T/svc.hpatch"
check "... tried in one stop first" grep -q "pid $pid: $one_stop" "$T/last.err"
check "... naming hold and the thread" \
	grep -q "tid $pid: 'hold' still in use" "$T/last.err"
check "... retried" grep -qE 'tries: ([2-9]|[1-9][0-9]+)' "$T/last.out"
check "... nothing left mapped" \
	bash -c "! grep -q patch_id <('$HPATCH' status -p $pid --json)"
expect_exit 0 "applied once hold() returns" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 10000 "$T/svc.hpatch"
check "... after more tries" grep -qE 'tries: ([2-9]|[1-9][0-9]+)' "$T/last.out"
open_conn 3 "$TARGET_PORT"
check "v2" test "$(ask 3 version)" = v2
check "no EINTR" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
