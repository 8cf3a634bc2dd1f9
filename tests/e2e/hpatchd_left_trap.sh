#!/usr/bin/env bash
# A thread hpatchd left attached inside its injected call (asleep in the
# kernel past every bound) is let go by hpatchd's loop once it stops. The
# call's end queues the trap of hpatchd's step behind hpatchd's interrupt,
# whose stop comes first: that trap is hpatchd's and must be taken and
# dropped before the thread's mask is given back, never delivered (it
# kills the target). HPATCH_FAULT=call-left makes that order
# certain and leaves the thread attached at once.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc left
agent_policy '[apply]' 'retry = 300ms 10min' 'rescan = 60s'
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_agent HPATCH_FAULT=call-left
check "hpatchd let it go once it stopped" wait_until 10 grep -q \
	"tid $a: stopped at last" "${AGENT_OUT:-$T/hpatchd.log}"
sleep 0.3
unharmed "$a"
check "pid $a serves" test -n "$(ask 3 version)"
check "then patched" wait_until 10 has_patch "$a" "$id"
finish
