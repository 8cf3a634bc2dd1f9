#!/usr/bin/env bash
# A phased rollout with Ansible (the hpatch.live collection, ansible/) over
# an inventory of five hosts on this machine (local connection, each host
# with its own running service), rings of 1, 2 and 2 hosts. h3's health
# check fails: h3 is reverted, and the rollout stops after h3's ring with
# max_fail_percentage 0 (h4 and h5 untouched), or goes on with 50 (h4 and
# h5 patched, h1 and h2 unchanged the second time). Then the module alone:
# check mode with --diff changes nothing, absent reverts once and then
# reports no change, and the facts list the patch where it is in effect.
. "$(dirname "$0")/lib.bash"
require_ptrace
command -v ansible-playbook >/dev/null || { echo "skip: no ansible-playbook (scripts/setup.sh installs ansible-core)" >&2; exit 77; }

export ANSIBLE_COLLECTIONS_PATH=$HP_SRC/ansible ANSIBLE_HOME=$T/ansible-home
export ANSIBLE_LOCAL_TEMP=$T/ansible-tmp ANSIBLE_REMOTE_TEMP=$T/ansible-tmp
export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
make_key k
# The services run a copy of svc-v1 with a build-id of this test's own, and
# the patch is made for it: the rollout takes tens of seconds, and another
# test's `hpatch apply --all` of svc-v1 (all_processes) must not reach
# these hosts' processes meanwhile.
python3 -c 'import os, struct, sys
sys.stdout.buffer.write(struct.pack("<III", 4, 20, 3) + b"GNU\0" + os.urandom(20))' >"$T/build-id.note"
objcopy --update-section .note.gnu.build-id="$T/build-id.note" \
	"$HP_TD/svc-v1" "$T/svc-v1"
# A patch id of this test's own too.
id=ansible-$$
"$HPDIFF" --old "$HP_TD/CMakeFiles/svc-v1.objs.dir" \
	--new "$HP_TD/CMakeFiles/svc-v2.objs.dir" --binary "$T/svc-v1" \
	-o "$T/fix.hpatch" -q --key "$T/k.key" --id "$id" >/dev/null

declare -A PID PORT
for h in h1 h2 h3 h4 h5; do
	start_target "$T/svc-v1" "$T/$h.log" 1
	PID[$h]=$TARGET_PID PORT[$h]=$TARGET_PORT
done
version() { exec 7<>"/dev/tcp/127.0.0.1/${PORT[$1]}"; ask 7 version; exec 7>&-; }
printf '#!/bin/bash\n# health PORT WANT: the service on PORT answers version WANT\nexec 3<>/dev/tcp/127.0.0.1/$1; echo version >&3; read -r -t 5 v <&3; [ "$v" = "$2" ]\n' >"$T/health"

cat >"$T/hosts.yml" <<YAML
all:
  vars:
    ansible_connection: local
    hpatch_binary: $HPATCH
    hpatch_src: $T/fix.hpatch
    hpatch_trust_dir: $T/trust
    hpatch_audit_log: $T/audit.log
    hpatch_health_retries: 1
    hpatch_health_delay: 0
  hosts:
$(for h in h1 h2 h3 h4 h5; do
	want=v2
	[ $h = h3 ] && want=v9 # h3's service fails its health check
	printf '    %s: {hpatch_pids: [%s], hpatch_health_cmd: "bash %s %s %s"}\n' \
		$h "${PID[$h]}" "$T/health" "${PORT[$h]}" $want
done)
YAML
rollout() { # rollout SUMMARY MAX_FAIL
	ansible-playbook hpatch.live.rollout -i "$T/hosts.yml" -e hpatch_summary_file="$1" \
		-e '{"hpatch_rings": [1, 2, 2]}' -e hpatch_max_fail_percentage="$2"
}
applied_here() { grep -q "\"action\":\"apply\",\"pid\":$1,.*\"result\":\"ok\"" "$T/audit.log"; }

# max_fail_percentage 0: h3's ring has a failure, so the rollout stops there.
expect_exit 2 "rollout, max_fail_percentage 0: stops with failed hosts" rollout "$T/sum1" 0
for h in h1 h2; do check "$h: v2" test "$(version $h)" = v2; done
check "h3: applied, then reverted: v1" test "$(version h3)" = v1
check "h3 was applied before its health check" applied_here "${PID[h3]}"
check "h3: health check failed, reverted" grep -qx "h3: reverted: Health check (command) failed" "$T/sum1"
for h in h4 h5; do
	check "$h: not reached, v1" test "$(version $h)" = v1
	check "$h: never applied" bash -c "! grep -q '\"pid\":${PID[$h]},' '$T/audit.log'"
done
check "summary: h1, h2 applied, h3 reverted, no h4, h5" test "$(cut -d: -f1,2 "$T/sum1" | tr '\n' ' ')" = "h1: applied h2: applied h3: reverted "
check "ansible says the rollout stopped" grep -q "NO MORE HOSTS LEFT" "$T/last.out"

# max_fail_percentage 50: one failure in a ring of two goes on.
expect_exit 2 "rollout, max_fail_percentage 50: goes on" rollout "$T/sum2" 50
for h in h1 h2 h4 h5; do check "$h: v2" test "$(version $h)" = v2; done
check "h3: v1 again" test "$(version h3)" = v1
check "summary: h1, h2 unchanged (idempotent), h3 reverted, h4, h5 applied" \
	test "$(cut -d: -f1,2 "$T/sum2" | tr '\n' ' ')" = "h1: unchanged h2: unchanged h3: reverted h4: applied h5: applied "
check "the summary play names every host" grep -q "h5: applied" "$T/last.out"

# The module alone.
mod() { ansible -i "$T/hosts.yml" "$1" -m hpatch.live.patch -a "$2" "${@:3}"; }
args="src=$T/fix.hpatch trust_dir=$T/trust hpatch=$HPATCH audit_log=$T/audit.log pids=${PID[h3]}"
expect_exit 0 "check mode on h3" mod h3 "$args" --check --diff
check "... would change, says the diff" grep -q "+pid ${PID[h3]}: $id" "$T/last.out"
check "... and changed nothing" test "$(version h3)" = v1
args="src=$T/fix.hpatch trust_dir=$T/trust hpatch=$HPATCH audit_log=$T/audit.log pids=${PID[h1]}"
expect_exit 0 "absent on h1" mod h1 "$args state=absent"
check "... changed" grep -q '"changed": true' "$T/last.out"
check "... h1: v1" test "$(version h1)" = v1
expect_exit 0 "absent on h1 again" mod h1 "$args state=absent"
check "... no change" grep -q '"changed": false' "$T/last.out"
expect_exit 0 "applied on h1 again" mod h1 "$args"
check "... h1: v2, per process result ok" grep -q '"result": "ok"' "$T/last.out"
expect_exit 0 "facts on h2" ansible -i "$T/hosts.yml" h2 -m hpatch.live.patch_facts -a "hpatch=$HPATCH"
check "... the patch is active in h2's process" \
	python3 -c "import json,sys; t=open('$T/last.out').read(); d=json.loads(t[t.index('{'):]); sys.exit(${PID[h2]} not in d['ansible_facts']['hpatch_patches']['$id']['active'])"
finish
