#!/usr/bin/env bash
# A restart fallback restarts a unit of the host's systemd only: a process
# whose service lies below another unit (a container's manager runs it,
# or a user's) is no unit of the host's by that name, and nothing is
# restarted; one in a service with only slices above it is restarted
# (asked of the system bus: here one that is not there).
. "$(dirname "$0")/lib.bash"
require_ptrace

CG=/sys/fs/cgroup/unified
[ -f "$CG/cgroup.procs" ] || CG=/sys/fs/cgroup
nested=$CG/hpatch-test-$$.scope/system.slice/hp-nested-$$.service
top=$CG/hpatch-test-$$.slice/hp-top-$$.service
mkdir -p "$nested" "$top"
trap 'cleanup; sleep 0.2; rmdir "$nested" "${nested%/*}" "${nested%/*/*}" \
	"$top" "${top%/*}" 2>/dev/null || true' EXIT

agent_svc fallback-unit
agent_policy '[apply]' 'retry = 200ms 200ms' 'attempt_timeout = 100ms' \
	'[fallback]' "unit hp-*-$$.service = restart"
agent_install
# in_unit DIR: the target just started moves to cgroup DIR, a thread of
# it spins 15 s below hold(): busy.
in_unit() {
	echo "$TARGET_PID" >"$1/cgroup.procs"
	open_conn "$2" "$TARGET_PORT"
	echo "hold -15000" >&"$2"
}
start_target "$T/bin/svc-v1" "$T/n.log" 1
n=$TARGET_PID
in_unit "$nested" 3
start_target "$T/bin/svc-v1" "$T/t.log" 1
t=$TARGET_PID
in_unit "$top" 4
check "pid $n in a service below a scope" \
	grep -q "^0::.*hpatch-test-$$.scope/system.slice/hp-nested-$$.service$" "/proc/$n/cgroup"
sleep 0.2
start_agent DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-bus"

said() { grep -q "$1" "$T/hpatchd.log"; }
check "a host's service: its restart asked of the system bus" \
	wait_until 10 said "restart 'hp-top-$$.service': system bus"
check "a service below a scope: not the host's, nothing restarted" \
	wait_until 10 said \
	"pid $n: unit 'hp-nested-$$.service': not a unit of the host's systemd: nothing restarted"
unsaid() { ! grep -q "$1" "$T/hpatchd.log"; }
check "... the system bus never asked for it" \
	unsaid "restart 'hp-nested-$$.service'"
check "audit: a fallback line each" \
	test "$(grep -c '"action":"fallback-restart"' "$HPATCH_AUDIT_LOG")" -eq 2
audited() { # audited PID RESULT: its restart's line says RESULT
	grep -q "\"action\":\"fallback-restart\",\"pid\":$1,.*\"result\":\"$2\"" "$HPATCH_AUDIT_LOG"
}
check "... failed, as the bus was not there" audited "$t" HP_E_SYSTEM
check "... failed, as nothing was restarted" audited "$n" HP_E_FALLBACK
exec 3>&- 4>&-
finish
