#!/usr/bin/env bash
# Failure atomicity: make each step of apply and revert fail in turn
# (HPATCH_FAULT) and prove the target is exactly as before: same memory
# map, same behaviour, still running; then a clean apply still works.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
start_target "$HP_BUILD/testdata/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
ask 3 version >/dev/null # its thread (and stack) exist before maps.before

# jump:2 and jump:4 fail after some jumps were written: they must be undone.
steps="mmap write mprotect seize stop jump jump:2 jump:4"
for step in $steps; do
	cp "/proc/$pid/maps" "$T/maps.before"
	expect_exit 1 "apply fails at '$step'" \
		env HPATCH_FAULT=$step "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
	check "'$step': error names the step" grep -q "fault injected at step" "$T/last.err"
	cat "/proc/$pid/maps" >"$T/maps.after" # cmp trusts st_size, 0 in /proc
	check "'$step': memory map unchanged" cmp -s "$T/maps.after" "$T/maps.before"
	check "'$step': still v1 (price)" test "$(ask 3 'price 10')" = 100
	check "'$step': still v1 (version)" test "$(ask 3 version)" = v1
	check "'$step': process alive" kill -0 "$pid"
done
check "audit log records the failures" \
	test "$(grep -c '"result":"HP_E_FAULT"' "$T/audit.log")" -eq "$(wc -w <<<"$steps")"

expect_exit 0 "clean apply after the faults" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
check "v2 now" test "$(ask 3 version)" = v2
for step in seize stop unjump unjump:3; do
	cp "/proc/$pid/maps" "$T/maps.before"
	expect_exit 1 "revert fails at '$step'" \
		env HPATCH_FAULT=$step "$HPATCH" revert -p "$pid"
	cat "/proc/$pid/maps" >"$T/maps.after"
	check "'$step': memory map unchanged" cmp -s "$T/maps.after" "$T/maps.before"
	check "'$step': still fully v2 (price)" test "$(ask 3 'price 10')" = 95
	check "'$step': still fully v2 (version)" test "$(ask 3 version)" = v2
	check "'$step': patch still listed active" \
		grep -q '"state":"active"' <("$HPATCH" status -p "$pid" --json)
done

# Replacing a patch: a fault at any step, after some of the new jumps and
# restores were written, leaves the older patch fully in effect.
"$HPDIFF" --old "$HP_BUILD/testdata/CMakeFiles/svc-v1.objs.dir" \
	--new "$HP_BUILD/testdata/CMakeFiles/svc-v3.objs.dir" \
	--binary "$HP_BUILD/testdata/svc-v1" --key "$T/k.key" --id fix-v3 \
	--sequence "$(($(date +%s) + 100))" -o "$T/v3.hpatch" -q >/dev/null
for step in mmap mprotect stop jump jump:2 jump:3 jump:4; do
	cp "/proc/$pid/maps" "$T/maps.before"
	expect_exit 1 "replacing apply fails at '$step'" \
		env HPATCH_FAULT=$step "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/v3.hpatch"
	cat "/proc/$pid/maps" >"$T/maps.after"
	check "'$step': memory map unchanged" cmp -s "$T/maps.after" "$T/maps.before"
	check "'$step': still the older patch everywhere" \
		test "$(ask 3 'price 10')-$(ask 3 version)-$(ask 3 'hold 1')" = "95-v2-held v2"
	check "'$step': older patch still active" \
		grep -q '"state":"active"' <("$HPATCH" status -p "$pid" --json)
done

expect_exit 0 "clean revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 'price 10')-$(ask 3 version)" = "100-v1"
check "no EINTR through all of it" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
