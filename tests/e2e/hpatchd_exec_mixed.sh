#!/usr/bin/env bash
# A new process that maps two patched builds at its exec's look: the
# program's patch has no unwind tables and goes at that look; the
# library's has them and waits for ld.so, to the first rescan (3 ms on).
# That rescan took the process for untouched (no query: "nothing of ours
# in it yet", true only when the exec's look applied nothing), applied
# the program's patch again and logged, at error level, that it was
# applied already. Here ld.so is held once it mapped the library (an
# LD_AUDIT library, testdata hold_load.c) and hpatchd is stopped meanwhile,
# so that its look at the exec sees both builds.
. "$(dirname "$0")/lib.bash"
require_ptrace

O=$HP_TD/CMakeFiles
make_key k
# The program's patch, its new objects stripped of their unwind tables.
mkdir -p "$T/svc2/targets/svc" "$T/bin"
for o in "$O"/svc-v2.objs.dir/targets/svc/*.o; do
	objcopy -R .eh_frame -R .rela.eh_frame "$o" "$T/svc2/targets/svc/${o##*/}"
done
"$HPDIFF" --old "$O/svc-v1.objs.dir" --new "$T/svc2" --binary "$HP_TD/svc-v1" \
	--key "$T/k.key" --id "prog-$$" -o "$T/prog.hpatch" -q >/dev/null
"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$HP_TD/libgreet-v1.so" --key "$T/k.key" --id "lib-$$" \
	-o "$T/lib.hpatch" -q >/dev/null
# bss: the unwinder's object (272 bytes) where a patch has a table.
bss() { "$HPATCH" inspect --trust "$T/trust" "$1" | sed -n 's/^ *bss_size: //p'; }
check "the program's patch has no unwind table" test "$(bss "$T/prog.hpatch")" = 0
check "the library's has one" test "$(bss "$T/lib.hpatch")" = 272
cp "$HP_TD/svc-v1" "$HP_TD/libgreet-v1.so" "$T/bin/"
agent_policy '[apply]'
expect_exit 0 "install the program's patch" "$HPATCH" install \
	--store "$AGENT_STORE" --trust "$T/trust" "$T/prog.hpatch"
expect_exit 0 "install the library's patch" "$HPATCH" install \
	--store "$AGENT_STORE" --trust "$T/trust" "$T/lib.hpatch"
start_agent

kill -STOP "$AGENT_PID"
HP_HOLD_AT=libgreet HP_HOLD_FILE=$T/h LD_AUDIT=$HP_TD/libhold_load.so \
	LD_PRELOAD=$T/bin/libgreet-v1.so "$T/bin/svc-v1" 0 >"$T/svc.log" 2>&1 &
pid=$!
PIDS+=("$pid")
check "ld.so held, the library mapped" wait_until 10 test -e "$T/h.held"
check "... in pid $pid's map" grep -q libgreet-v1.so "/proc/$pid/maps"
kill -CONT "$AGENT_PID"
check "the program's patch applied at the exec's look" \
	wait_until 10 has_patch "$pid" "prog-$$"
sleep 0.05 # past the first rescan
touch "$T/h.go"
check "the library's patch applied once ld.so is done" \
	wait_until 10 has_patch "$pid" "lib-$$"
sleep 0.4 # past the rescans after the exec
check "no patch applied twice" \
	bash -c "! grep -i 'already applied' '$T/hpatchd.log'"
check "the program's patch applied once" \
	test "$(grep -c "pid $pid: applied 'prog-$$'" "$T/hpatchd.log")" -eq 1
finish
