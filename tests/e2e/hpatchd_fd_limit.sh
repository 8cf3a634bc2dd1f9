#!/usr/bin/env bash
# hpatchd at its limit of open files (a storm of them) cannot read a new
# process's maps nor its memory: that tells nothing of the process. It is
# looked at again on the retry schedule, not forgotten until the next full
# scan (an hour away here), and patched once hpatchd has fds again.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc fdlimit
agent_policy '[apply]' 'retry = 100ms' 'rescan = 1h'
agent_install
start_agent
sleep 0.5 # its start's full scan done: only its lasting fds are open
agent_no_fds

start_target "$T/bin/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
undecided() { grep -q "pid $pid: which builds it maps cannot be told now" "$T/hpatchd.log"; }
check "pid $pid looked at, undecided" wait_until 10 undecided
check "pid $pid not patched while hpatchd has no fd to spare" \
	no_patch "$pid"
check "hpatchd still runs" kill -0 "$AGENT_PID"
agent_fds_back
check "pid $pid patched once hpatchd has fds again" \
	wait_until 5 has_patch "$pid" "$id"
finish
