#!/usr/bin/env bash
# hpatchd never patches memory that another process runs in unstopped
# (issue 14, case 1, through the daemon): it asks only the processes
# created since the target's exec, as the kernel's events told it. Here
# the sharer is a clone(CLONE_VM) child whose leader has left, a thread
# of its own running on: asking every process of the host misses it (its
# leader has no memory to compare), the events do not. The apply is
# refused, naming it, and retried until it has gone.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc sharers
agent_policy '[apply]' 'automatic = no' 'retry = 100ms' 'rescan = 60s'
start_agent
agent_install
start_target "$T/bin/svc-v1" "$T/svc.log" 1 # exec'd while hpatchd listens
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
sharer=$(ask 3 "share 3000")
check "a process shares the service's memory ($sharer)" test "${sharer:-0}" -gt 0
check "its leader has left" wait_until 5 grep -q '^State:.*Z' "/proc/$sharer/status"
agent_policy '[apply]' 'automatic = yes' 'retry = 100ms' 'rescan = 60s'
kill -HUP "$AGENT_PID"
check "hpatchd refuses, naming the sharer" wait_until 5 \
	grep -q "pid $pid: shares its memory with pid $sharer " "$T/hpatchd.log"
check "the service is not patched meanwhile" no_patch "$pid"
busy_sharing() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "\"pid\":$pid,\"state\":\"busy\",\"reason\":\"its memory shared with pid $sharer "
}
check "busy in hpatch list, saying why" wait_until 5 busy_sharing
check "... and answers v1" test "$(ask 3 version)" = v1
check "patched once the sharer has gone" wait_until 10 has_patch "$pid" "$id"
check "... and answers v2" test "$(ask 3 version)" = v2
check "the refusals are in the audit log" \
	grep -q "\"action\":\"apply\",\"pid\":$pid,.*\"result\":\"HP_E_BUSY\"" "$HPATCH_AUDIT_LOG"
check "... saying why (not a function in use)" \
	grep -q "\"pid\":$pid,.*\"result\":\"HP_E_BUSY\",\"reason\":\"its memory shared with pid $sharer " "$HPATCH_AUDIT_LOG"
exec 3>&-
finish
