#!/usr/bin/env bash
# hpatchd at its limit of open files cannot read its store when it
# changes (here an hpatch uninstall): that tells nothing of the store.
# It is read again once it can be, and meanwhile nothing is applied from
# the store read before: a process started then never gets the patch
# just uninstalled (nor one that kept its old facts, once fds are back).
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc storefd
agent_policy '[apply]' 'retry = 100ms' 'rescan = 1h'
agent_install
agent_patched_target
agent_no_fds
expect_exit 0 "uninstall (reverted by hpatch itself)" "$HPATCH" uninstall \
	--store "$AGENT_STORE" --trust "$T/trust" "$id"
check "pid $a reverted" lacks_patch "$a" "$id"
unread() { grep -q "store '$AGENT_STORE': Too many open files" "$T/hpatchd.log"; }
check "hpatchd could not read the store" wait_until 10 unread
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
sleep 0.5 # its exec seen, its looks due meanwhile
check "pid $b started meanwhile: not patched" lacks_patch "$b" "$id"
agent_fds_back
read_again() { grep -q "store '$AGENT_STORE': 0 patches installed" "$T/hpatchd.log"; }
check "the store read once hpatchd has fds again" wait_until 10 read_again
sleep 0.5 # pid $b's next looks: 100 ms apart
check "pid $b never gets the patch uninstalled" lacks_patch "$b" "$id"
check "... nor is it audited so" \
	test "$(grep -c "\"action\":\"apply\",\"pid\":$b,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG")" -eq 0
finish
