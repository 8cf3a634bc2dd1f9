#!/usr/bin/env bash
# A phased rollout with Ansible (the hpatch.live collection, ansible/) over
# an inventory of five hosts on this machine (local connection, each host
# with its own service, build, patch and store: ansible_lib.bash), rings of
# 1, 2 and 2 hosts. First the playbook in check mode: `hpatch check` on
# every host says "would apply" (one busy for a while too, as the apply
# would retry it), and nothing changes (no process, no store); a host
# where the apply would fail fails the dry run. Then h3's health check fails: h3 is reverted and its patch taken
# out of its store, its fallback runs, and the rollout stops after h3's
# ring with max_fail_percentage 0 (h4 and h5 untouched), or goes on with 50
# (h4 and h5 patched, h1 and h2 unchanged the second time). A last run
# without h3 changes nothing on any host (changed=0).
. "$(dirname "$0")/lib.bash"
require_ptrace
id=rollout-$$
. "$(dirname "$0")/ansible_lib.bash"
fleet_hosts h1 h2 h3 h4 h5
printf '#!/bin/bash\n# health PORT WANT: the service on PORT answers version WANT\nexec 3<>/dev/tcp/127.0.0.1/$1; echo version >&3; read -r -t 5 v <&3; [ "$v" = "$2" ]\n' >"$T/health"

cat >"$T/hosts.yml" <<YAML
all:
  vars:
$(inventory_vars)
    hpatch_health_retries: 1
    hpatch_health_delay: 0
    hpatch_fallback_cmd: "echo {{ inventory_hostname }} >>$T/fallbacks"
  hosts:
$(for h in h1 h2 h3 h4 h5; do
	want=v2
	[ $h = h3 ] && want=v9 # h3's service fails its health check
	printf '    %s: {%s, hpatch_health_cmd: "bash %s %s %s"}\n' \
		$h "$(host_vars $h)" "$T/health" "${PORT[$h]}" $want
done)
YAML
rollout() { # rollout SUMMARY MAX_FAIL [ANSIBLE ARGS...]
	ansible-playbook hpatch.live.rollout -i "$T/hosts.yml" -e hpatch_summary_file="$1" \
		-e '{"hpatch_rings": [1, 2, 2]}' -e hpatch_max_fail_percentage="$2" "${@:3}"
}
touched() { grep -q "\"pid\":$1," "$T/audit.log" 2>/dev/null; }
applied_here() { grep -q "\"action\":\"apply\",\"pid\":$1,.*\"result\":\"ok\"" "$T/audit.log"; }
summary() { cut -d';' -f1 "$1" | cut -d: -f1,2 | tr '\n' ' '; }

# Check mode: hpatch check on each host, nothing changed anywhere. h2's
# service is in a patched function for its first 4 s (hold): the check
# retries it as the apply would (its --timeout, 5 s by default), and it
# would apply; one look alone called a loaded host's dry run a failure.
exec 5<>"/dev/tcp/127.0.0.1/${PORT[h2]}"
echo "hold 4000" >&5
expect_exit 0 "rollout --check --diff: every host would apply" rollout "$T/sum0" 0 --check --diff
exec 5>&-
check "summary: every host would apply" \
	test "$(summary "$T/sum0")" = "h1: would apply h2: would apply h3: would apply h4: would apply h5: would apply "
check "the diff names each host's store and process" \
	bash -c "grep -q '+store $T/h4/store: $id-h4' '$T/last.out' && grep -q '+pid ${PID[h4]}: $id-h4' '$T/last.out'"
for h in h1 h2 h3 h4 h5; do
	check "$h: still v1, store empty, no action recorded" \
		bash -c "[ \"\$1\" = v1 ] && [ -z \"\$2\" ] && ! grep -q '\"pid\":${PID[$h]},' '$T/audit.log' 2>/dev/null" - "$(version $h)" "$(stored $h)"
done
check "no fallback ran" test ! -e "$T/fallbacks"
expect_exit 2 "rollout --check on h1 for pid 1 (not of the build): fails" \
	rollout "$T/sum0f" 0 --check --limit h1 -e '{"hpatch_pids": [1]}'
check "... h1 would fail" grep -qx "h1: would fail: Install and apply the live patch failed" "$T/sum0f"
check "... nothing reverted, no fallback: h1 v1, nothing recorded" \
	bash -c "[ '$(version h1)' = v1 ] && [ ! -e '$T/fallbacks' ] && ! grep -q '\"pid\":${PID[h1]},' '$T/audit.log' 2>/dev/null"

# max_fail_percentage 0: h3's ring has a failure, so the rollout stops there.
expect_exit 2 "rollout, max_fail_percentage 0: stops with failed hosts" rollout "$T/sum1" 0
for h in h1 h2; do
	check "$h: v2, installed" test "$(version $h) $(stored $h)" = "v2 $id-$h.hpatch "
done
check "h3: applied, then reverted: v1" test "$(version h3)" = v1
check "h3 was applied before its health check" applied_here "${PID[h3]}"
check "h3: taken out of its store" test -z "$(stored h3)"
check "h3: health check failed, reverted, fallback ran" \
	grep -qx "h3: reverted: Health check (command) failed; fallback ran" "$T/sum1"
check "the fallback ran on h3 only" test "$(cat "$T/fallbacks")" = h3
for h in h4 h5; do
	check "$h: not reached: v1, nothing installed" test "$(version $h)" = v1 -a -z "$(stored $h)"
	check "$h: never applied" bash -c "! grep -q '\"pid\":${PID[$h]},' '$T/audit.log'"
done
check "summary: h1, h2 applied, h3 reverted, no h4, h5" test "$(summary "$T/sum1")" = "h1: applied h2: applied h3: reverted "
check "ansible says the rollout stopped" grep -q "NO MORE HOSTS LEFT" "$T/last.out"

# max_fail_percentage 50: one failure in a ring of two goes on.
expect_exit 2 "rollout, max_fail_percentage 50: goes on" rollout "$T/sum2" 50
for h in h1 h2 h4 h5; do
	check "$h: v2, installed" test "$(version $h) $(stored $h)" = "v2 $id-$h.hpatch "
done
check "h3: v1 again, not installed" test "$(version h3)" = v1 -a -z "$(stored h3)"
check "summary: h1, h2 unchanged (idempotent), h3 reverted, h4, h5 applied" \
	test "$(summary "$T/sum2")" = "h1: unchanged h2: unchanged h3: reverted h4: applied h5: applied "
check "the summary play names every host" grep -q "h5: applied" "$T/last.out"

# Idempotence: once more without h3, no summary file: nothing changes.
expect_exit 0 "rollout again, h3 left out" rollout "" 0 --limit 'all:!h3'
for h in h1 h2 h4 h5; do
	check "$h: changed=0 failed=0" grep -Eq "^$h +: ok=[0-9]+ +changed=0 +unreachable=0 +failed=0" "$T/last.out"
done
check "the fallback ran on h3 only, once per failed rollout" test "$(cat "$T/fallbacks" | tr '\n' ' ')" = "h3 h3 "
finish
