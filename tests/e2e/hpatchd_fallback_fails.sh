#!/usr/bin/env bash
# A fallback's own outcome is what its audit line says: a command that
# fails (exit 3) is audited as the policy's fallback failed, and logged
# with its exit status; one that succeeds, when it ends (hpatchd does not
# wait for it meanwhile), with why it ran; one still running as hpatchd
# stops, then, as such; a restart with no service to restart is audited
# as failed too.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc fallback-fails
mkdir -p "$T/bin/a" "$T/bin/b" "$T/bin/c" "$T/bin/d"
for d in a b c d; do cp "$HP_TD/svc-v1" "$T/bin/$d/"; done
agent_policy '[apply]' 'retry = 200ms 200ms' 'attempt_timeout = 100ms' \
	'[fallback]' "exe $T/bin/a/* = command exit 3" \
	"exe $T/bin/b/* = command sleep 1; echo \$HPATCH_PID >$T/b.done" \
	"exe $T/bin/c/* = restart" \
	"exe $T/bin/d/* = command sleep 5"
agent_install
# busy DIR FD: svc-v1 of $T/bin/DIR started, a thread of it spinning 15 s
# below hold(): busy.
busy() {
	start_target "$T/bin/$1/svc-v1" "$T/$1.log" 1
	open_conn "$2" "$TARGET_PORT"
	echo "hold -15000" >&"$2"
}
busy a 3
a=$TARGET_PID
busy b 4
b=$TARGET_PID
busy c 5
c=$TARGET_PID
busy d 6
d=$TARGET_PID
sleep 0.2
start_agent DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"
# audited PID ACTION RESULT: its fallback's line says RESULT.
audited() {
	grep -q "\"action\":\"$2\",\"pid\":$1,.*\"result\":\"$3\"" "$HPATCH_AUDIT_LOG"
}
check "a failed command: audited as failed" \
	wait_until 10 audited "$a" fallback-command HP_E_FALLBACK
check "... its exit status logged" \
	grep -q "pid $a: fallback command exited with status 3" "$T/hpatchd.log"
check "a command that succeeds: audited when it ends, with why it ran" \
	wait_until 10 audited "$b" fallback-command HP_E_BUSY
check "... which it had" test "$(cat "$T/b.done")" = "$b"
check "a restart of a process in no service: audited as failed" \
	wait_until 10 audited "$c" fallback-restart HP_E_FALLBACK
check "a command started" \
	wait_until 10 grep -q "pid $d: not patched .*running fallback" "$T/hpatchd.log"
check "... running: not audited yet" \
	test "$(grep -c '"action":"fallback-' "$HPATCH_AUDIT_LOG")" -eq 3
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
check "... then, as hpatchd stops" grep -q \
	"\"action\":\"fallback-command\",\"pid\":$d,.*\"result\":\"HP_E_SYSTEM\",\"reason\":\"Operation now in progress\"" \
	"$HPATCH_AUDIT_LOG"
check "one fallback line each" \
	test "$(grep -c '"action":"fallback-' "$HPATCH_AUDIT_LOG")" -eq 4
exec 3>&- 4>&- 5>&- 6>&-
finish
