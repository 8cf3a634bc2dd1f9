#!/usr/bin/env bash
# A process is looked at again at each exec, as the program it runs now:
# one started as a program no patch is for (a shell, the policy's to
# include or not) that then execs a program of the patched build is
# patched; one that execs an excluded program is not, though the program
# it ran before was included; not either when it exec'd while no patch
# was installed (hpatchd follows no exec then), the patch installed later,
# nor when its exec's event was lost (the socket's queue overflowed).
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc exec
agent_policy '[apply]' 'retry = 100ms' '[exclude]' "exe = $T/bin/excluded/*"
agent_install
mkdir -p "$T/bin/excluded"
cp "$HP_TD/svc-v1" "$T/bin/excluded/"
cp "$(command -v sh)" "$T/bin/sh"
AGENT_ARGS=(--debug=timing) # says when process events were lost
start_agent

# Not included: the shell, then the patched program.
start_target sh "$T/a.log" -c "sleep 1; exec '$T/bin/svc-v1' 1"
a=$TARGET_PID
check "pid $a patched once it runs svc-v1" wait_until 10 has_patch "$a" "$id"
# Included (a copy of the shell under $T/bin), then excluded.
start_target "$T/bin/sh" "$T/b.log" -c "sleep 1; exec '$T/bin/excluded/svc-v1' 1"
b=$TARGET_PID
check "pid $b runs the excluded copy" \
	test "$(readlink "/proc/$b/exe")" = "$T/bin/excluded/svc-v1"
listed() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$b,\"state\":\"excluded\""
}
check "pid $b listed as excluded" wait_until 10 listed
sleep 1 # its rescans after the exec
check "pid $b not patched" no_patch "$b"

# Looked at as the included shell while the store is empty; it execs the
# excluded program then, and the patch comes back after.
start_target "$T/bin/sh" "$T/c.log" -c \
	"echo ready; while [ ! -e '$T/go' ]; do sleep 0.02; done; exec '$T/bin/excluded/svc-v1' 1"
c=$TARGET_PID
expect_exit 0 "uninstall" "$HPATCH" uninstall --store "$AGENT_STORE" "$id"
check "the store read empty" wait_until 10 grep -q "0 patches installed" "$T/hpatchd.log"
sleep 0.5 # its look at every process, pid $c the shell
touch "$T/go"
runs_excluded() { test "$(readlink "/proc/$c/exe")" = "$T/bin/excluded/svc-v1"; }
check "pid $c runs the excluded copy" wait_until 10 runs_excluded
sleep 0.3
agent_install
c_listed() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$c,\"state\":\"excluded\""
}
check "pid $c listed as excluded" wait_until 10 c_listed
sleep 1
check "pid $c not patched" no_patch "$c"

# Looked at as the included shell by a scan of every process (known by its
# start time then), it execs the excluded program while hpatchd, stopped,
# lets the events of a storm of processes overflow its socket: that exec's
# event is lost.
start_target "$T/bin/sh" "$T/e.log" -c \
	"echo ready; while [ ! -e '$T/go2' ]; do sleep 0.02; done; exec '$T/bin/excluded/svc-v1' 1"
e=$TARGET_PID
n=$(agent_hups)
kill -HUP "$AGENT_PID"
wait_until 10 above "$n" agent_hups || true
sleep 0.5 # its look at every process, pid $e the shell
kill -STOP "$AGENT_PID"
for _ in $(seq 6000); do /bin/true; done
touch "$T/go2"
runs_excluded() { test "$(readlink "/proc/$e/exe")" = "$T/bin/excluded/svc-v1"; }
check "pid $e runs the excluded copy" wait_until 10 runs_excluded
kill -CONT "$AGENT_PID"
check "hpatchd lost process events" wait_until 10 grep -q "process events lost" "$T/hpatchd.log"
e_listed() {
	"$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null |
		grep -q "{\"pid\":$e,\"state\":\"excluded\""
}
check "pid $e listed as excluded" wait_until 10 e_listed
check "pid $e not patched" no_patch "$e"
finish
