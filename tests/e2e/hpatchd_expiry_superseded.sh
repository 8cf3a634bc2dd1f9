#!/usr/bin/env bash
# A patch past its expiry still supersedes the older patches of its build
# in the store: they do not become wanted again. Were they, hpatchd would
# try the older patch in every process that has the newer one, have it
# refused as a rollback, retry, and run the policy's fallback (a restart,
# say) for each; and in every process started since, where the host's
# anti-rollback record refuses it too.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
id=expsup-$$
seq=$(date +%s)
exp=$((seq + 6))
build_patch svc "$T/old.hpatch" --key "$T/k.key" --id "$id-old" --sequence "$seq"
build_patch svc "$T/new.hpatch" --key "$T/k.key" --id "$id-new" \
	--sequence $((seq + 1)) --expires "$exp"
mkdir -p "$T/bin"
cp "$HP_TD/svc-v1" "$T/bin/"
agent_policy '[apply]' 'retry = 100ms 100ms' 'attempt_timeout = 100ms' \
	'[fallback]' "exe $T/bin/* = command echo \"\$HPATCH_PID \$HPATCH_REASON\" >>$T/fallback.log"
agent_install "$T/old.hpatch"
agent_install "$T/new.hpatch"
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
start_agent
check "before its expiry: the newer applied" wait_until 10 has_patch "$a" "$id-new"
check "... not the older" lacks_patch "$a" "$id-old"
check "... still ahead ($(($exp - $(date +%s))) s)" test "$(date +%s)" -lt "$exp"
while [ "$(date +%s)" -le "$exp" ]; do sleep 0.2; done
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
sleep 2 # the expiry read, a process started, retries due
check "pid $a keeps the newer" has_patch "$a" "$id-new"
check "no fallback ran" test ! -s "$T/fallback.log"
check "the older not tried on pid $a" \
	test "$(grep -c "\"action\":\"apply\",\"pid\":$a,.*\"patch_id\":\"$id-old\"" "$HPATCH_AUDIT_LOG")" -eq 0
check "... nor on pid $b, started since" \
	test "$(grep -c "\"action\":\"apply\",\"pid\":$b,.*\"patch_id\":\"$id-old\"" "$HPATCH_AUDIT_LOG")" -eq 0
check "pid $b not patched (the newer expired)" lacks_patch "$b" "$id-new"
finish
