#!/usr/bin/env bash
# hpatch status exits 1 when it cannot read some process (50baed9): the
# list may lack its patches. The hpatch.live modules read status before
# any state; that must not keep state=absent, the rollout's way back, from
# reverting the patch and taking it out of the store where hpatch can:
# the uninstall itself says which processes it could not look at. And the
# facts name such processes. hpatch here runs as root with CAP_SYS_PTRACE
# alone (as in all_unreadable.sh): it cannot read a process of nobody's.
. "$(dirname "$0")/lib.bash"
require_ptrace
id=unknown-$$
. "$(dirname "$0")/ansible_lib.bash"
fleet_hosts h1
hosts_yml h1
cat >"$T/hpatch" <<SH
#!/bin/sh
exec setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_ptrace -- "$HPATCH" "\$@"
SH
chmod 755 "$T/hpatch"
setpriv --reuid=65534 --regid=65534 --clear-groups sleep 600 &
PIDS+=($!)
n=$!
expect_exit 0 "installed in h1's store" "$HPATCH" install --store "$T/h1/store" \
	--trust "$T/trust" "$T/h1.hpatch"
expect_exit 0 "applied to h1's process" "$HPATCH" apply -p "${PID[h1]}" \
	--trust "$T/trust" "$T/h1.hpatch"
check "... v2" test "$(version h1)" = v2
expect_exit 1 "status cannot read pid $n" "$T/hpatch" status --json
check "... names it" grep -q "{\"pid\":$n,\"reason\":\"Permission denied\"}" "$T/last.out"

expect_exit 0 "h1: facts, with pid $n unknown" ansible -i "$T/hosts.yml" h1 \
	-m hpatch.live.patch_facts -a "store=$T/h1/store trust_dir=$T/trust hpatch=$T/hpatch state_dir=$HPATCH_STATE_DIR"
check "... h1's process has the patch" grep -q "\"$id-h1\"" "$T/last.out"
check "... pid $n unknown, with why" \
	grep -Ezq "\"hpatch_unknown\": \[[^]]*\"pid\": $n,[^]]*\"reason\": \"Permission denied\"" "$T/last.out"

expect_exit 0 "h1: absent" ansible -i "$T/hosts.yml" h1 -m hpatch.live.patch \
	-a "src=$T/h1.hpatch store=$T/h1/store trust_dir=$T/trust hpatch=$T/hpatch \
audit_log=$T/audit.log state_dir=$HPATCH_STATE_DIR state=absent"
check "... h1's process reverted (v1)" test "$(version h1)" = v1
check "... and out of the store" test -z "$(stored h1)"
warned() { cat "$T/last.out" "$T/last.err" | tr '\n' ' ' | grep -q "$1"; }
check "... the module warns of pid $n" \
	warned "WARNING.*pid $n: hpatch cannot tell which patches it has (Permission denied)"
finish
