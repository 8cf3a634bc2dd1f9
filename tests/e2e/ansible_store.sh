#!/usr/bin/env bash
# The hpatch.live modules alone, through the host's store: on h1, absent
# (uninstall: reverted, out of the store) then again (no change);
# installed (in the store, no process touched: hpatchd is not running)
# then again (no change); the facts show h1's process pending and why;
# applied in check mode with --diff (hpatch check: would apply, nothing
# changed), then applied, then again (no change). On h2, with hpatchd
# running under a policy that does not trust the signer: the facts show
# h2's process refused, with hpatchd's reason, and check mode fails where
# the apply would fail (a process that is not of the patch's build).
. "$(dirname "$0")/lib.bash"
require_ptrace
id=store-$$
. "$(dirname "$0")/ansible_lib.bash"
fleet_hosts h1 h2
hosts_yml h1 h2
# mod H STATE [ANSIBLE ARGS...]: hpatch.live.patch on host H.
mod() {
	ansible -i "$T/hosts.yml" "$1" -m hpatch.live.patch -a "src=$T/$1.hpatch store=$T/$1/store \
trust_dir=$T/trust hpatch=$HPATCH audit_log=$T/audit.log state_dir=$HPATCH_STATE_DIR state=$2" "${@:3}"
}
# facts H: hpatch.live.patch_facts on host H.
facts() {
	ansible -i "$T/hosts.yml" "$1" -m hpatch.live.patch_facts \
		-a "store=$T/$1/store trust_dir=$T/trust hpatch=$HPATCH state_dir=$HPATCH_STATE_DIR"
}
# result KEY PYTHON-EXPR: EXPR over the last ad-hoc result (r) is true.
result() {
	python3 -c "import json, sys
t = open('$T/last.out').read()
r = json.loads(t[t.index('{'):])
sys.exit(0 if ($1) else 1)"
}
changed() { result "r['changed'] is $1"; }

expect_exit 0 "h1: applied" mod h1 applied
check "... changed, installed" result "r['changed'] and r['installed']"
check "... v2" test "$(version h1)" = v2
expect_exit 0 "h1: absent" mod h1 absent
check "... changed: uninstalled, reverted" \
	result "r['changed'] and not r['installed'] and r['processes'] == [{'pid': ${PID[h1]}, 'result': 'ok', 'reason': ''}]"
check "... h1: v1, store empty" test "$(version h1) $(stored h1)" = "v1 "
expect_exit 0 "h1: absent again" mod h1 absent
check "... no change" changed False

expect_exit 0 "h1: installed" mod h1 installed
check "... changed, pending: hpatchd is not running" \
	result "r['changed'] and r['processes'] == [{'pid': ${PID[h1]}, 'result': 'pending', 'reason': 'hpatchd is not running'}]"
check "... in the store, h1 untouched: v1" test "$(version h1) $(stored h1)" = "v1 $id-h1.hpatch "
expect_exit 0 "h1: installed again" mod h1 installed
check "... no change" changed False
expect_exit 0 "h1: facts" facts h1
check "... installed, h1's process pending, and why" \
	result "r['ansible_facts']['hpatch_patches']['$id-h1'] == {'installed': True, 'store_state': 'installed', 'pending': [${PID[h1]}], 'reasons': {'${PID[h1]}': 'hpatchd is not running'}}"

applies() { grep -c "\"action\":\"apply\",\"pid\":${PID[h1]}," "$T/audit.log"; }
nr_applies=$(applies)
expect_exit 0 "h1: applied, check mode, --diff" mod h1 applied --check --diff
check "... would apply, says hpatch check" \
	result "r['changed'] and r['processes'] == [{'pid': ${PID[h1]}, 'result': 'would apply', 'reason': ''}]"
check "... the diff: the process, not the store (installed already)" \
	bash -c "grep -q '^+pid ${PID[h1]}: $id-h1' '$T/last.out' && ! grep -q '^[-+]store' '$T/last.out'"
check "... nothing changed: v1, no apply recorded" test "$(version h1) $(applies)" = "v1 $nr_applies"
expect_exit 0 "h1: applied" mod h1 applied --diff
check "... changed, ok" result "r['changed'] and r['processes'][0]['result'] == 'ok'"
check "... v2" test "$(version h1)" = v2
expect_exit 0 "h1: applied again" mod h1 applied
check "... no change: already applied (hpatch exit 3)" result "not r['changed'] and r['hpatch_rc'] == 3"
expect_exit 0 "h1: applied again, check mode" mod h1 applied --check
check "... no change: already applied" \
	result "not r['changed'] and r['processes'][0]['result'] == 'already applied'"
expect_exit 2 "h1: check mode with a process not of the build: fails" \
	ansible -i "$T/hosts.yml" h1 -m hpatch.live.patch --check \
	-a "src=$T/h1.hpatch store=$T/h1/store trust_dir=$T/trust hpatch=$HPATCH pids=${PID[h2]}"
check "... naming it" grep -q "would fail: pid ${PID[h2]}: refused" "$T/last.out"

# hpatchd on h2's store, not trusting the signer: h2's process refused.
AGENT_STORE=$T/h2/store
agent_policy '[apply]' 'trusted_keys = 0123456789abcdef'
start_agent
expect_exit 0 "h2: installed, hpatchd running" mod h2 installed
refused() {
	"$HPATCH" list --store "$T/h2/store" --trust "$T/trust" --json | grep -q "{\"pid\":${PID[h2]},\"state\":\"refused\""
}
check "hpatchd refuses h2's process" wait_until 60 refused
expect_exit 0 "h2: facts" facts h2
check "... hpatchd runs; h2's process refused, with hpatchd's reason" \
	result "r['ansible_facts']['hpatchd_running'] and r['ansible_facts']['hpatch_patches']['$id-h2']['refused'] == [${PID[h2]}] and 'trusted_keys' in r['ansible_facts']['hpatch_patches']['$id-h2']['reasons']['${PID[h2]}']"
check "... and h2 is v1" test "$(version h2)" = v1
finish
