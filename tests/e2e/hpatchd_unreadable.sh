#!/usr/bin/env bash
# hpatchd runs with fewer capabilities than its unit gives it (no
# CAP_DAC_OVERRIDE: a host's override of the unit, say), so a program
# another user owns with mode 0700 is a file it cannot read. A
# process running it (started by root: hpatchd reaches its memory) is
# patched all the same, from its memory: one running when hpatchd starts,
# and one started later (the file known by then as not readable).
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc unreadable
agent_policy '[apply]' 'retry = 100ms' '[metrics]' "textfile = $T/hpatch.prom"
agent_install
chown 65534:65534 "$T/bin/svc-v1"
chmod 0700 "$T/bin/svc-v1"
FEWER_CAPS=(setpriv --no-new-privs --inh-caps=-all
	--bounding-set=-all,+sys_ptrace,+net_admin,+sys_nice --)
check "those capabilities cannot read the program" \
	bash -c "! ${FEWER_CAPS[*]} head -c 1 '$T/bin/svc-v1' >/dev/null 2>&1"
# hpatchd so started (the capabilities it keeps after exec).
cat >"$T/hpatchd-unit" <<EOT
#!/bin/sh
exec ${FEWER_CAPS[*]} "$HPATCHD" "\$@"
EOT
chmod +x "$T/hpatchd-unit"

start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
HPATCHD=$T/hpatchd-unit start_agent
no_dac() { # neither CAP_DAC_OVERRIDE (1) nor CAP_DAC_READ_SEARCH (2)
	local eff
	eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$AGENT_PID/status")
	[ -n "$eff" ] && (((16#$eff >> 1 & 3) == 0))
}
check "hpatchd runs without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH" no_dac
check "pid $a (running before hpatchd) patched" \
	wait_until 10 has_patch "$a" "$id"
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
check "pid $b (started since) patched" wait_until 10 has_patch "$b" "$id"
open_conn 3 "$TARGET_PORT"
check "pid $b answers with the patched code" test "$(ask 3 version)" = v2

# Run by its owner, the process's memory is his too (/proc/PID/mem, mode
# 0600): these capabilities open neither it nor the program. Nothing is
# known of what it maps, which is not "none of the patched builds": it
# is said, and looked at again, never dropped as unpatched.
chmod 755 "$T" "$T/bin"
setpriv --reuid=65534 --regid=65534 --clear-groups "$T/bin/svc-v1" 1 \
	>"$T/c.log" 2>&1 &
PIDS+=($!)
c=$!
check "pid $c (nobody's): what it maps cannot be told, and it says so" \
	wait_until 10 grep -q "pid $c: which builds it maps cannot be told now: Permission denied" "$T/hpatchd.log"
# And shown where an operator looks: status (hpatchd's view), list (root's
# hpatch reads the process: pending, with hpatchd's reason), the metrics.
undecided_in_status() {
	"$HPATCH" status --state-dir "$HPATCH_STATE_DIR" --json |
		grep -q "\"undecided\":\[{\"pid\":$c,\"reason\":\"Permission denied\"}"
}
check "status: pid $c among hpatchd's undecided" wait_until 10 undecided_in_status
"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" \
	--state-dir "$HPATCH_STATE_DIR" --json >"$T/list.out" 2>&1 || true
check "list: pid $c pending, hpatchd cannot tell" \
	grep -q "{\"pid\":$c,\"state\":\"pending\",\"reason\":\"hpatchd cannot tell which builds it maps: Permission denied\"}" "$T/list.out"
check "metrics: one process undecided" \
	wait_until 10 grep -qx "hpatch_processes_undecided 1" "$T/hpatch.prom"
kill "$c"
check "gone, no longer undecided" \
	wait_until 15 grep -qx "hpatch_processes_undecided 0" "$T/hpatch.prom"
finish
