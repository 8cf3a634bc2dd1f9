#!/usr/bin/env bash
# hpatchd finishes an uninstall (its hpatch killed once the patch was
# removed and marked: nothing reverted yet) in every process that has the
# patch, those forked meanwhile too: a worker a server forks after the
# pass's list of processes was read, from a parent not reverted yet, has
# the patch in its copy of the memory (hpatchd looks at no fork). The
# mark goes only once it is reverted.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc unforked
agent_policy '[apply]' 'attempt_timeout = 3s'
agent_install
# a: busy in the patch (hold() spins) for a while; its revert waits.
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
# s: a server (busy too) that forks a worker while hpatchd waits for a.
start_target "$T/bin/svc-v1" "$T/s.log" 1
s=$TARGET_PID
open_conn 4 "$TARGET_PORT"
open_conn 5 "$TARGET_PORT"
start_agent
check "pid $a patched" wait_until 10 has_patch "$a" "$id"
check "pid $s patched" wait_until 10 has_patch "$s" "$id"
echo "hold -1500" >&3
echo "hold -1500" >&5 # s busy too: not reverted when it forks, whatever the order
sleep 0.1
mark=$AGENT_STORE/$id.uninstalled
printf '%s' "$id" >"$mark" # as hpatch uninstall does, then killed
rm "$AGENT_STORE/$id.hpatch"
sleep 0.5 # hpatchd read it; its pass waits for a
child=$(ask 4 "fork 20000")
PIDS+=("$child")
check "pid $a reverted" wait_until 10 lacks_patch "$a" "$id"
check "pid $s reverted" wait_until 10 lacks_patch "$s" "$id"
check "the mark goes" wait_until 10 test ! -e "$mark"
check "the worker $child, forked meanwhile, reverted too" lacks_patch "$child" "$id"
check "... audited" grep -q "\"action\":\"revert\",\"pid\":$child,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG"
finish
