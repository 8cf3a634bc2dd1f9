#!/usr/bin/env bash
# A process that maps two copies of libgcc_s: one dlmopen'd into a
# link-map namespace of its own (an isolated plugin, a tool's agent),
# whose registry of unwind tables the program's exceptions never search,
# mapped below the program's copy. The patch's table must be registered
# with the program's copy (the first in its link map), and its lock is
# that copy's (the thread that calls it is chosen clear of that copy).
# It was registered with the copy mapped lowest: hpatch said it was
# registered, and the first exception thrown through patched code ended
# the target in std::terminate. Both the same file loaded again and a
# copy of it from another path; then revert: deregistered from the same
# copy, the target unwinds the old code as before.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch unwind "$T/u.hpatch" --key "$T/k.key"
mkdir "$T/other"
cp "$(readlink -f /lib/x86_64-linux-gnu/libgcc_s.so.1)" "$T/other/libgcc_s.so.1"

not_in() { ! grep -q "$1" "$2"; }
# copies PID: the start of each libgcc_s copy it maps (its first mapping),
# lowest first.
copies() { awk '$3 == "00000000" && $6 ~ /\/libgcc_s\.so/ { sub(/-.*/, "", $1); print $1 }' "/proc/$1/maps"; }
# second_lowest PID LOG: the second copy (its __register_frame_info, as
# the preloaded library said) lies in the lowest copy, below the other.
second_lowest() {
	local at low high
	at=$(sed -n 's/^second_libgcc: __register_frame_info at 0x\([0-9a-f]*\)$/\1/p' "$2")
	low=$(copies "$1" | head -n 1)
	high=$(copies "$1" | tail -n 1)
	[ -n "$at" ] && ((16#$at > 16#$low && 16#$at < 16#$high))
}

for second in "$(readlink -f /lib/x86_64-linux-gnu/libgcc_s.so.1)" "$T/other/libgcc_s.so.1"; do
	log=$T/u-$(basename "$(dirname "$second")").log
	HP_SECOND_LIBGCC=$second LD_PRELOAD=$HP_TD/libsecond_libgcc.so \
		start_target "$HP_TD/unwind-v1" "$log"
	pid=$TARGET_PID
	check "$second: two copies of libgcc_s mapped" \
		test "$(copies "$pid" | wc -l)" = 2
	check "$second: the second one below the program's" \
		second_lowest "$pid" "$log"
	check "$second: v1 throws and catches" wait_round_in "$log" 'caller=1 outer=100'
	expect_exit 0 "$second: apply" "$HPATCH" apply -p "$pid" \
		--trust "$T/trust" "$T/u.hpatch"
	check "$second: patched thrower's exception caught by its caller" \
		wait_round_in "$log" 'caller=2 outer=100 catcher=20'
	check "$second: the program's unwinder finds the patched code's FDE" \
		wait_round_in "$log" 'fde=1'
	expect_exit 0 "$second: revert" "$HPATCH" revert -p "$pid"
	check "$second: after revert, the old code throws and unwinds again" \
		wait_round_in "$log" 'caller=1 outer=100 catcher=10'
	check "$second: target alive" kill -0 "$pid"
	check "$second: never terminated" not_in "terminate" "$log"
	[ "$FAILED" = 0 ] || tail -n 3 "$log" >&2
	kill -9 "$pid" 2>/dev/null || true
done
finish
