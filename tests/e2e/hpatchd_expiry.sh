#!/usr/bin/env bash
# A patch's expiry holds in hpatchd too, not only when it reads the store:
# once past it, hpatchd applies the patch to no process more, as hpatch
# apply and install refuse it (hpatch list says it expired), without a
# store change or SIGHUP; a process that has it keeps it (an expiry
# refuses new applies, it reverts nothing).
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
id=expiry-$$
exp=$(($(date +%s) + 8))
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id "$id" --expires "$exp"
mkdir -p "$T/bin"
cp "$HP_TD/svc-v1" "$T/bin/"
agent_policy
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
start_agent
check "before its expiry: applied" wait_until 10 has_patch "$a" "$id"
check "... still ahead ($(($exp - $(date +%s))) s)" test "$(date +%s)" -lt "$exp"
while [ "$(date +%s)" -le "$exp" ]; do sleep 0.2; done
expired() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "\"patch_id\":\"$id\",[^}]*\"state\":\"HP_E_EXPIRED\""
}
check "past it: hpatch list says it expired" expired
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
# Its exec is looked at at once, then 3, 30 and 300 ms on.
sleep 1
check "... a process started since is not patched" lacks_patch "$b" "$id"
check "... by hpatchd's word" wait_until 5 grep -q "'$AGENT_STORE/$id.hpatch': patch expired" "$T/hpatchd.log"
check "... nor audited as applied" \
	test "$(grep -c "\"action\":\"apply\",\"pid\":$b,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG")" -eq 0
check "... one that had it keeps it" has_patch "$a" "$id"
finish
