#!/usr/bin/env bash
# hpatchd patches and reverts live a service run as systemd runs one with
# MemoryDenyWriteExecute=yes: its seccomp filter (EPERM for mmap with
# PROT_WRITE|PROT_EXEC, mprotect and pkey_mprotect with PROT_EXEC, shmat
# with SHM_EXEC) and the kernel's PR_SET_MDWE (no mapping gains exec).
# The patch's code is mapped executable and never writable, its bytes
# written through /proc/PID/mem: nothing the target forbids itself.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc mdwe
agent_policy '[apply]' 'rescan = 60s'
# mdwe_target NAME: a svc-v1 under the filter, its connection on fd 3+N.
mdwe_target() {
	start_target "$HP_TD/hostile" "$T/$1.log" seccomp mdwe "$T/bin/svc-v1" 1
	check "$1: runs under a seccomp filter" grep -q '^Seccomp:.*2' "/proc/$TARGET_PID/status"
	check "$1: which refuses what MemoryDenyWriteExecute= refuses" \
		grep -q "mprotect(PROT_EXEC): refused" "$T/$1.log"
}
mdwe_target running
running=$TARGET_PID
open_conn 3 "$TARGET_PORT"
start_agent
agent_install
check "the running service is patched" wait_until 10 has_patch "$running" "$id"
check "... and answers v2 on its open connection" test "$(ask 3 version)" = v2
mdwe_target started
started=$TARGET_PID
open_conn 4 "$TARGET_PORT"
check "a service started afterwards is patched (exec event)" wait_until 10 has_patch "$started" "$id"
check "... and answers v2" test "$(ask 4 version)" = v2
check "no seccomp refusal in hpatchd's log" test "$(grep -c seccomp "$T/hpatchd.log")" -eq 0
check "the patch's code: executable, not writable" \
	grep -qE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$running/maps"
expect_exit 0 "uninstall" "$HPATCH" uninstall --store "$AGENT_STORE" --trust "$T/trust" "$id"
check "the running service is reverted" no_patch "$running"
check "... answers v1" test "$(ask 3 version)" = v1
check "the one started afterwards too" no_patch "$started"
check "... answers v1" test "$(ask 4 version)" = v1
check "both still run" kill -0 "$running" "$started"
check "the audit log: 2 applies, 2 reverts" \
	test "$(grep -cE '"action":"(apply|revert)".*"result":"ok"' "$HPATCH_AUDIT_LOG")" -eq 4
exec 3>&- 4>&-
finish
