#!/usr/bin/env bash
# A patch's unwind table is registered by a call of the unwinder's
# __register_frame_info in a thread of the target. A thread that outlives
# the call's bound (asleep in the kernel) is left attached, and the apply
# fails, busy. Its call may have registered the table, or may yet: the
# region holds the table and the object the unwinder links into its list.
# The undo unmapped it, and the unwinder's next walk (an exception, a
# cancellation, a backtrace) would read unmapped memory. It stays mapped,
# said, and no later hpatch unmaps it (the unwinder, asked to forget a
# table it does not know, aborts). HPATCH_FAULT=fn-left leaves the call
# so, its work done.
. "$(dirname "$0")/lib.bash"
require_ptrace

# maps PID: through a live thread (its leader has exited).
maps() { cat "/proc/$1/task/$(newest_tid "$1")/maps"; }
anon() { grep -cE "^[0-9a-f]+-[0-9a-f]+ $1 00000000 00:00 0 *$" || true; }
not() { ! "$@"; }

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p
# libgcc_s loaded (glibc loads it for pthread_exit): an unwinder.
start_target "$HP_TD/svc-v1" "$T/svc.log" 1 main-exits
pid=$TARGET_PID
for _ in $(seq 100); do maps "$pid" | grep -q libgcc_s && break; sleep 0.05; done
check "libgcc_s loaded in the target" bash -c "grep -q libgcc_s /proc/$pid/task/*/maps"
open_conn 3 "$TARGET_PORT"
rx=$(maps "$pid" | anon r-xp)

HPATCH_FAULT=fn-left expect_exit 4 "left inside the registration: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
tid=$(sed -n "s/.*tid \([0-9]*\): still inside hpatch's injected call .*/\1/p" "$T/last.err" | head -1)
check "left inside the registration's call (tid $tid)" test -n "$tid"
check "the region kept, said" \
	grep -q "pid $pid: the patch region at 0x[0-9a-f]* stays mapped, unused" "$T/last.err"
check "... its code still mapped" test "$(maps "$pid" | anon r-xp)" -eq $((rx + 1))
check "... not unmapped by the undo" not grep -q "cannot unmap" "$T/last.err"
sleep 0.3
check "tid $tid let go" grep -q '^TracerPid:[[:space:]]*0$' "/proc/$pid/task/$tid/status"
check "tid $tid's mask its own" \
	test "$(awk '/^SigBlk:/ { print $2 }' "/proc/$pid/task/$tid/status")" = 0000000000000000
check "old code, answering as before" test "$(ask 3 version)" = v1
expect_exit 3 "a later hpatch finds no patch" "$HPATCH" revert -p "$pid"
check "... and leaves the region mapped" test "$(maps "$pid" | anon r-xp)" -eq $((rx + 1))
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
check "pid $pid runs" kill -0 "$pid"
exec 3>&-
finish
