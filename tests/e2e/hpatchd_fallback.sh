#!/usr/bin/env bash
# A process whose patched function stays in use: hpatchd retries on the
# policy's schedule, then runs the policy's fallback exactly once for that
# process and patch (not again on later tries, nor after a restart of
# hpatchd), keeps trying, and patches it once the function is free. A
# process no fallback rule matches gets none. The record of fallbacks run
# forgets the processes that exited.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc fallback
mkdir -p "$T/bin/other"
cp "$HP_TD/svc-v1" "$T/bin/other/"
agent_policy '[apply]' 'retry = 200ms 200ms' 'attempt_timeout = 100ms' \
	'[fallback]' "exe $T/bin/other/* = none" \
	"exe $T/bin/* = command echo \"\$HPATCH_PID \$HPATCH_REASON\" >>$T/fallback.log"
agent_install

start_target "$T/bin/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
open_conn 4 "$TARGET_PORT"
start_target "$T/bin/other/svc-v1" "$T/other.log" 1
other=$TARGET_PID
open_conn 5 "$TARGET_PORT"
echo "hold -15000" >&4 # a thread spins 15 s below hold(): busy
echo "hold -15000" >&5
sleep 0.2
start_agent
lines() { cat "$T/fallback.log" 2>/dev/null | wc -l; }
ran() { test "$(lines)" -ge 1; }
check "the fallback ran after the retries" wait_until 10 ran
check "... for pid $pid, saying why" grep -q "^$pid HP_E_BUSY.*'hold' in use\|^$pid .*hold" "$T/fallback.log"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
start_agent
sleep 1.5 # more tries, by a new hpatchd: all busy
check "still exactly once (across tries and a restart)" test "$(lines)" -eq 1
check "still v1" test "$(ask 3 version)" = v1
listed() { # listed PATTERN: hpatch list --json shows it
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null | grep -q "$1"
}
check "list: gave up, the fallback's outcome kept across the restart" \
	wait_until 10 listed \
	"{\"pid\":$pid,\"state\":\"gave-up\",\"reason\":\"hold in use by thread [0-9]*; fallback command ran and exited with status 0; not run again\""
check "list: no fallback in the policy for the other" wait_until 10 listed \
	"{\"pid\":$other,\"state\":\"gave-up\",\"reason\":\"[^\"]*; no fallback in the policy\""
check "patched once hold() returns" wait_until 25 has_patch "$pid" "$id"
check "v2" test "$(ask 3 version)" = v2
check "the fallback never ran again" test "$(lines)" -eq 1
check "audit: one fallback line" \
	test "$(grep -c '"action":"fallback-command"' "$HPATCH_AUDIT_LOG")" -eq 1
check "audit: busy tries recorded" grep -q "\"action\":\"apply\",\"pid\":$pid,.*\"result\":\"HP_E_BUSY\"" "$HPATCH_AUDIT_LOG"

# The record of fallbacks run keeps the processes alive alone: one that
# exits leaves it, and a restart drops the lines of those gone meanwhile
# (else it grew by a line per fallback for ever, and hpatchd's memory).
record=$HPATCH_STATE_DIR/hpatchd.fallbacks
unrecorded() { ! grep -q "^$1 " "$record"; }
check "pid $pid recorded" grep -q "^$pid " "$record"
exec 3>&-
kill -9 "$pid"
check "... not once it exited" wait_until 10 unrecorded "$pid"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" || true
echo "4194000 12345 $id" >>"$record" # a process gone while hpatchd was
# ... and one still alive (its start time, field 22 of its stat).
echo "$other $(sed 's/.*) //' "/proc/$other/stat" | cut -d' ' -f20) $id" >>"$record"
start_agent
# (start_agent saw the first one's "ready": this one's load is awaited.)
check "... nor one gone while hpatchd was not running" \
	wait_until 10 unrecorded 4194000
check "a process alive stays recorded" grep -q "^$other " "$record"
exec 4>&- 5>&-
finish
