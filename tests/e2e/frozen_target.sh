#!/usr/bin/env bash
# A target in a frozen cgroup (docker pause, systemctl freeze) sleeps
# where no interrupt reaches it: it cannot be stopped until it is thawed.
# - hpatch apply gives up within a stop's bound (250 ms), exit 4 (busy:
#   safe to retry), naming the thread, its state and why.
# - hpatchd is not held up by it (each try waits a stop's bound, not
#   seconds: a process started meanwhile is patched at once), and says
#   "would not stop" for it.
# - Thawed, the target never waits stopped for hpatchd's next try (with
#   the default schedule, up to 10 minutes away): the thread hpatchd left
#   attached, its interrupt pending, is let go the moment it stops.
. "$(dirname "$0")/lib.bash"
require_ptrace

freezer_cgroup
not_stopped() { ! grep -q '^State:[[:space:]]*t' "/proc/$1/status"; }
untraced() { grep -q '^TracerPid:[[:space:]]*0$' "/proc/$1/status"; }

# Its next try minutes away (as the default schedule's are, after the
# first few), and no rescan meanwhile.
agent_svc frozen
agent_policy '[apply]' 'retry = 100ms 10min' 'rescan = 60s'
agent_install
start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
join "$a"
freeze
check "pid $a frozen" wait_until 5 frozen

start=$(date +%s%N)
failed=$FAILED
expect_exit 4 "apply -p: busy, it would not stop" \
	"$HPATCH" apply -p "$a" --trust "$T/trust" --debug=ptrace "$T/svc.hpatch"
ms=$((($(date +%s%N) - start) / 1000000))
check "given up within a stop's bound ($ms ms)" test "$ms" -lt 1500
# v1's freezer keeps it from its stop; v2's lets it stop, not run.
check "the thread named, frozen" grep -qE \
	"pid $a: tid $a would not stop \(state D.*\) within 250 ms; nothing changed|tid $a: its cgroup is frozen .*nothing changed" \
	"$T/last.err"
check "the hint says why" grep -q "its cgroup is frozen" "$T/last.err"
# (Failed: what the apply said, and the threads' states now.)
[ "$FAILED" = "$failed" ] || {
	grep -v '^hpatch: debug: tid [0-9]* stopped' "$T/last.err" | tail -n 40
	grep -H '^State' /proc/"$a"/task/*/status
	cat "$FZ/freezer.state" "$FZ/cgroup.events" 2>/dev/null
} >&2

start_agent
check "hpatchd: busy, it would not stop" wait_until 10 bash -c \
	"'$HPATCH' list --store '$AGENT_STORE' --trust '$T/trust' --state-dir '$HPATCH_STATE_DIR' --json |
	grep -q '{\"pid\":$a,\"state\":\"busy\",\"reason\":\"thread $a would not stop'"
# Not held up: a new process is patched meanwhile, as ever.
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
open_conn 4 "$TARGET_PORT"
check "pid $b (started since) patched at once" wait_until 3 has_patch "$b" "$id"
check "pid $b answers v2" test "$(ask 4 version)" = v2

thaw
sleep 0.3 # it runs again, or stops for a tracer
check "thawed: pid $a is not left stopped" wait_until 3 not_stopped "$a"
check "thawed: nothing traces pid $a" wait_until 3 untraced "$a"
v=$(ask 3 version)
check "pid $a serves ($v)" test "$v" = v1 -o "$v" = v2
finish
