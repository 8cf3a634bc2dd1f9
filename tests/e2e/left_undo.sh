#!/usr/bin/env bash
# A thread hpatch left attached inside its injected call (past its
# bound), back while the same apply still runs: the apply's undo (the
# unmap of the region it mapped) meets it again. It gets its own
# registers and mask back there, and the undo runs through it. Refused
# as busy, the region stayed mapped for good (no header written yet: no
# later hpatch finds it), and the thread waited, stopped, for hpatch to
# exit, which let it go with hpatch's registers and its step's trap (the
# target died). HPATCH_FAULT=call-left:2 leaves it so at the region's
# second call, its data's mprotect, the first one mapped: the target has
# libgcc_s loaded, whose unwind registration writes the data (with none,
# the mmap is the only call).
. "$(dirname "$0")/lib.bash"
require_ptrace

# The region is mapped read+execute: the target has no other anonymous
# executable mapping.
no_region() {
	[ -r "/proc/$pid/maps" ] && ! grep -qE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$pid/maps"
}

not() { ! "$@"; }

svc_and_patch unwinder
HPATCH_FAULT=call-left:2 expect_exit 4 "left inside its call: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "left inside the region's second call" \
	grep -q "fault injected at step 'call-left' (#2)" "$T/last.err"
check "let go by the undo, back from the call" \
	grep -q "tid $pid: stopped at last" "$T/last.err"
check "the undo went through it" \
	not grep -q "cannot unmap patch region" "$T/last.err"
sleep 0.3
unharmed "$pid"
check "no patch region left mapped" no_region
check "old code, answering as before" test "$(ask 3 version)" = v1
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
exec 3>&-
finish
