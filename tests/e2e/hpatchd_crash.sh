#!/usr/bin/env bash
# hpatchd killed (-9) in the middle of an apply, once with every thread of
# the target stopped and once with one thread stopped to write the patch into it: the target runs
# on, fully old, never torn nor left stopped; a restarted hpatchd finds
# the store and the process apart and reconciles them: fully patched.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc crash
agent_policy
traced_by() { test "$(awk '/^TracerPid/ {print $2}' "/proc/$1/status")" = "$2"; }
agent_install

for step in stop write; do
	start_target "$T/bin/svc-v1" "$T/$step.log" 2
	pid=$TARGET_PID
	exec 3<>"/dev/tcp/127.0.0.1/$TARGET_PORT"
	check "$step: v1 before" test "$(ask 3 version)" = v1
	start_agent "HPATCH_DELAY=$step:4000"
	check "$step: hpatchd is inside the apply (tracing pid $pid)" \
		wait_until 10 traced_by "$pid" "$AGENT_PID"
	sleep 0.3
	kill -9 "$AGENT_PID"
	wait "$AGENT_PID" 2>/dev/null || true
	check "$step: no longer traced" wait_until 10 traced_by "$pid" 0
	check "$step: every thread runs (none stopped)" \
		test "$(grep -l '^State:.*[tT]' /proc/"$pid"/task/*/status 2>/dev/null | wc -l)" -eq 0
	check "$step: answers, fully old" test "$(ask 3 version)" = v1
	check "$step: no patch half in place" \
		test "$("$HPATCH" status -p "$pid" --json | grep -c '"state":"partly')" -eq 0
	check "$step: no patch active" no_patch "$pid"
	start_agent
	check "$step: restarted hpatchd reconciles: patched" wait_until 10 has_patch "$pid" "$id"
	check "$step: answers v2 on the same connection" test "$(ask 3 version)" = v2
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID" || true
	exec 3>&-
done
finish
