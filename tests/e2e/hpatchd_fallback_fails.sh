#!/usr/bin/env bash
# A fallback's own outcome is what its audit line says: a command that
# fails (exit 3) is audited as the policy's fallback failed, and logged
# with its exit status; one that succeeds, when it ends (hpatchd does not
# wait for it meanwhile), with why it ran; one still running as hpatchd
# stops, then, as such; a restart with no service to restart is audited
# as failed too. hpatch list (text and --json) and status --json say,
# per process and patch, what the fallback did, from every later try on
# and across a restart of hpatchd, and that it is not run again; the
# metrics count the failed ones.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc fallback-fails
mkdir -p "$T/bin/a" "$T/bin/b" "$T/bin/c" "$T/bin/d"
for d in a b c d; do cp "$HP_TD/svc-v1" "$T/bin/$d/"; done
agent_policy '[apply]' 'retry = 200ms 200ms' 'attempt_timeout = 100ms' \
	'[fallback]' "exe $T/bin/a/* = command exit 3" \
	"exe $T/bin/b/* = command sleep 1; echo \$HPATCH_PID >$T/b.done" \
	"exe $T/bin/c/* = restart" \
	"exe $T/bin/d/* = command sleep 15" \
	'[metrics]' "textfile = $T/hpatch.prom"
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

# What each fallback did, as hpatch list --json and status --json say it
# (and text), after a later try than the fallback's: tries 2 + 1 + 1.
list() { "$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" "$@" 2>/dev/null; }
status() { "$HPATCH" status --json 2>/dev/null; }
later='"tries":\([4-9]\|[1-9][0-9]\)'
# listed PID RESULT WHAT: list --json shows it, the reason saying it too.
listed() {
	list --json | grep -q "{\"pid\":$1,\"state\":\"gave-up\",\"reason\":\"[^\"]*; fallback $3; not run again\",$later,\"fallback_done\":true,\"fallback_result\":\"$2\",\"fallback\":\"$3\"}"
}
# in_status PID RESULT WHAT: the daemon's view in status --json.
in_status() {
	status | grep -q "{\"pid\":$1,\"patch_id\":\"$id\",\"state\":\"gave-up\",$later,\"reason\":\"[^\"]*; fallback $3; not run again\",\"fallback_done\":true,\"fallback_result\":\"$2\",\"fallback\":\"$3\"}"
}
check "list: a's command failed (exit 3), not run again, at a later try" \
	wait_until 10 listed "$a" failed "command exited with status 3"
check "... status --json says so" wait_until 10 in_status "$a" failed "command exited with status 3"
check "... and list's text" eval 'list | grep -q "fallback: command exited with status 3"'
check "list: b's command succeeded" \
	wait_until 10 listed "$b" succeeded "command ran and exited with status 0"
check "list: c's restart failed, saying why" \
	wait_until 10 listed "$c" failed "restart [^\"]*"
check "... status too" wait_until 10 in_status "$c" failed "restart [^\"]*"
check "list: d's command still runs" \
	wait_until 10 listed "$d" running "command started, still running"
check "status: 2 fallbacks failed" \
	wait_until 10 eval 'status | grep -q "\"fallbacks\":4,\"fallbacks_failed\":2,"'
check "metrics: 2 fallbacks failed" \
	wait_until 10 grep -qx "hpatch_fallbacks_failed_total 2" "$T/hpatch.prom"

kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
check "... then, as hpatchd stops" grep -q \
	"\"action\":\"fallback-command\",\"pid\":$d,.*\"result\":\"HP_E_SYSTEM\",\"reason\":\"Operation now in progress\"" \
	"$HPATCH_AUDIT_LOG"
check "one fallback line each" \
	test "$(grep -c '"action":"fallback-' "$HPATCH_AUDIT_LOG")" -eq 4
record=$HPATCH_STATE_DIR/hpatchd.fallbacks
check "the record keeps each outcome" \
	grep -qx "$a [0-9]* $id failed command exited with status 3" "$record"
check "... d's: its end not seen" grep -qx \
	"$d [0-9]* $id unknown command still ran as hpatchd stopped: its end not seen" "$record"

# A new hpatchd reads them back: said again once it gives up, never run.
start_agent DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"
check "restarted: a's outcome still listed" \
	wait_until 10 listed "$a" failed "command exited with status 3"
check "... d's unknown end" wait_until 10 listed "$d" unknown \
	"command still ran as hpatchd stopped: its end not seen"
check "... and nothing run again" \
	test "$(grep -c '"action":"fallback-' "$HPATCH_AUDIT_LOG")" -eq 4
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
exec 3>&- 4>&- 5>&- 6>&-
finish
