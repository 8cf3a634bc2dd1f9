#!/usr/bin/env bash
# hpatchd meets a running process (not one it saw start) while its dynamic
# linker loads objects (a C++ program held by an LD_AUDIT library as ld.so
# starts it, libgcc_s not mapped yet: testdata hold_load.c), with a patch
# that carries unwind tables: nothing can be done then (rt_unwind.c,
# hp_unwind_ready). That is a passing state of the process, as a function
# in use is: the try is busy, said so in `hpatch list` and the audit log,
# and retried; never a system error ("Resource temporarily unavailable"),
# which made it a failure (a refusal). Let go, the process is patched.
# (Each try bounded to 100 ms: its verdict, busy, is audited at its end.)
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
id=loading-$$
build_patch unwind "$T/u.hpatch" --key "$T/k.key" --id "$id"
agent_policy '[apply]' 'retry = 20ms 50ms 100ms' 'attempt_timeout = 100ms'
cp "$HP_TD/unwind-v1" "$T/bin/"
HP_HOLD_AT=@main HP_HOLD_FILE=$T/start LD_AUDIT=$HP_TD/libhold_load.so \
	"$T/bin/unwind-v1" >"$T/u.log" 2>&1 &
pid=$!
PIDS+=("$pid")
check "held as ld.so starts it" wait_until 10 test -e "$T/start.held"
agent_install "$T/u.hpatch"
start_agent
not_in() { ! grep -q "$1" "$2"; }
list() { "$HPATCH" list --store "$AGENT_STORE" --trust "$T/trust" --json 2>/dev/null; }
busy_loading() {
	list | grep -q "\"pid\":$pid,\"state\":\"busy\",\"reason\":\"[^\"]*dynamic linker"
}
check "busy while ld.so loads: said in the list" wait_until 10 busy_loading
audited() { grep -q "\"pid\":$pid,.*\"result\":\"HP_E_LOADING\"" "$HPATCH_AUDIT_LOG"; }
check "audited as such" wait_until 10 audited
check "never a system error" not_in "HP_E_SYSTEM" "$HPATCH_AUDIT_LOG"
check "nor logged as one" not_in "temporarily unavailable" "$T/hpatchd.log"
check "nothing mapped meanwhile" test -z "$(grep -E ' r-xp 00000000 00:00 0 *$' "/proc/$pid/maps")"
touch "$T/start.go"
failed=$FAILED
check "let go: patched" wait_until 10 has_patch "$pid" "$id"
[ "$FAILED" = "$failed" ] || { tail -n 30 "$T/hpatchd.log"; list; } >&2
check "patched code throws, its caller catches" \
	wait_until 10 grep -q '^round .* caller=2 .* fde=1' "$T/u.log"
finish
