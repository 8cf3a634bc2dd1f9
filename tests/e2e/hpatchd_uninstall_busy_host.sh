#!/usr/bin/env bash
# hpatchd finishes an uninstall (its hpatch killed once the patch was
# removed and marked) on a host that starts processes all the time: it
# looks again at the processes it did not list only while the last such
# look found the patch in one (only a process that had it can have forked
# one that has it), not until a list shows none new, which such a host
# never gives. The mark goes.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc busyhost
agent_policy '[apply]' 'rescan = 2s'
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
start_agent
check "pid $a patched" wait_until 10 has_patch "$a" "$id"
busy_host_start
mark=$AGENT_STORE/$id.uninstalled
printf '%s' "$id" >"$mark" # as hpatch uninstall does, then killed
rm "$AGENT_STORE/$id.hpatch"
check "pid $a reverted" wait_until 10 lacks_patch "$a" "$id"
check "the mark goes while processes keep starting" wait_until 4 test ! -e "$mark"
busy_host_stop
finish
