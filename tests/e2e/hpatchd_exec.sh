#!/usr/bin/env bash
# A process is looked at again at each exec, as the program it runs now:
# one started as a program no patch is for (a shell, the policy's to
# include or not) that then execs a program of the patched build is
# patched; one that execs an excluded program is not, though the program
# it ran before was included.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc exec
agent_policy '[apply]' 'retry = 100ms' '[exclude]' "exe = $T/bin/excluded/*"
agent_install
mkdir -p "$T/bin/excluded"
cp "$HP_TD/svc-v1" "$T/bin/excluded/"
cp "$(command -v sh)" "$T/bin/sh"
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
finish
