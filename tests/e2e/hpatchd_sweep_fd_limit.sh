#!/usr/bin/env bash
# hpatchd finishing an uninstall (its hpatch killed once the patch was
# removed and marked) at its limit of open files cannot read a process's
# memory: that tells nothing of the patch there. The mark stays, and the
# process is reverted once hpatchd has fds again; only then the mark goes.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc sweepfd
agent_policy '[apply]' 'retry = 100ms' 'rescan = 1s'
agent_install
agent_patched_target
# One fd free: a list of /proc or the store's can be read, a process's
# memory and map not (both open at once).
agent_no_fds 1
mark=$AGENT_STORE/$id.uninstalled
printf '%s' "$id" >"$mark" # as hpatch uninstall does, then killed
rm "$AGENT_STORE/$id.hpatch"
read_again() { grep -q "store '$AGENT_STORE': 0 patches installed" "$T/hpatchd.log"; }
check "hpatchd read the store" wait_until 10 read_again
sleep 2.5 # its full scans, each a sweep of the mark (rescan: 1 s)
check "the mark stays while hpatchd cannot look at pid $a" test -e "$mark"
agent_fds_back
check "pid $a reverted once hpatchd has fds again" wait_until 10 lacks_patch "$a" "$id"
check "then the mark goes" wait_until 10 test ! -e "$mark"
finish
