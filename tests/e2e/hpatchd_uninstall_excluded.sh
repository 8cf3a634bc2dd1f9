#!/usr/bin/env bash
# hpatchd never reverts a process its policy excludes, an uninstalled
# patch no more than any; so while such a process keeps a patch marked
# uninstalled (patched by hand, and busy when `hpatch uninstall` came, or
# that hpatch killed), the mark stays and hpatchd says so once, naming
# pid, patch and rule: dropped, the patch would stay for good with
# nothing to tell of it. The mark goes once the process is reverted.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc uninstexcl
mkdir -p "$T/bin/x"
cp "$HP_TD/svc-v1" "$T/bin/x/"
agent_policy '[apply]' 'rescan = 1s' '[exclude]' "exe = $T/bin/x/svc-v1"
agent_install
# e: excluded, patched by hand; p: hpatchd's to patch and to revert.
start_target "$T/bin/x/svc-v1" "$T/e.log" 1
e=$TARGET_PID
start_target "$T/bin/svc-v1" "$T/p.log" 1
p=$TARGET_PID
expect_exit 0 "pid $e patched by hand" "$HPATCH" apply -p "$e" --trust "$T/trust" "$T/svc.hpatch"
start_agent
check "pid $p patched by hpatchd" wait_until 10 has_patch "$p" "$id"
mark=$AGENT_STORE/$id.uninstalled
printf '%s' "$id" >"$mark" # as hpatch uninstall does, then killed
rm "$AGENT_STORE/$id.hpatch"
check "pid $p reverted by hpatchd" wait_until 10 lacks_patch "$p" "$id"
check "said: pid $e keeps it, excluded, naming the rule" \
	wait_until 10 grep -q "pid $e ($T/bin/x/svc-v1): keeps uninstalled patch '$id': excluded by the policy ($T/bin/x/svc-v1)" "$T/hpatchd.log"
sleep 2.5 # two full scans, each a sweep of the marks
check "pid $e not reverted: excluded" has_patch "$e" "$id"
check "the mark stays while pid $e keeps the patch" test -e "$mark"
check "said once" test "$(grep -c "pid $e .*keeps uninstalled patch" "$T/hpatchd.log")" = 1
expect_exit 0 "pid $e reverted by hand" "$HPATCH" revert -p "$e"
check "then the mark goes" wait_until 10 test ! -e "$mark"
finish
