#!/usr/bin/env bash
# A target kept busy in its patched function does not hold hpatchd's loop:
# while its tries run back to back, each allowed a long attempt_timeout,
# targets started meanwhile are patched within a bound far below that
# timeout (a busy look holds the loop one short slice, the try goes on
# from the schedule), and the busy one stays unpatched, its tries logged
# once each, not once a slice.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc busyloop
agent_policy '[apply]' 'retry = 10ms' 'attempt_timeout = 10s'
agent_install

start_target "$T/bin/svc-v1" "$T/busy.log" 1
busy=$TARGET_PID
open_conn 3 "$TARGET_PORT"
open_conn 4 "$TARGET_PORT"
echo "hold -60000" >&4 # a thread spins 60 s below hold(): busy
sleep 0.2
start_agent
busy_seen() { grep -q "\"pid\":$busy,\"state\":\"busy\"" < <("$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null); }
check "the busy target is being tried" wait_until 10 busy_seen
for i in 1 2 3; do
	t0=$(date +%s%N)
	start_target "$T/bin/svc-v1" "$T/new$i.log" 1
	check "new target $i patched" wait_until 20 has_patch "$TARGET_PID" "$id"
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "... ${ms} ms after its start: not behind a 10 s try" test "$ms" -lt 2000
done
check "the busy one is still v1" test "$(ask 3 version)" = v1
check "... not patched" no_patch "$busy"
check "its first try is not over: not one busy error logged yet" \
	test "$(grep -c "pid $busy: .*still in use" "$T/hpatchd.log")" -eq 0
exec 3>&- 4>&-
finish
