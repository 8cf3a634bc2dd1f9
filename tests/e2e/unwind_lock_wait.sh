#!/usr/bin/env bash
# libgcc 12's __deregister_frame_info frees the table it sorted holding
# its object_mutex, and free() waits for the arena's lock a thread holds
# (here malloc_stats, blocked writing to a full FIFO). The call, made in
# another thread, is past its first lock: abandoned, it would leave
# object_mutex held, and every later backtrace or exception of the
# process would wait for ever. So it is waited for within the revert's
# --timeout: released meanwhile, the call returns and the region goes.
# Not released in time, the call is left to finish on its own, its return
# made into a signal return of the thread's own registers and mask: when
# the lock comes, the thread goes back to its sleep, and the region stays
# mapped, unused, for no later hpatch to touch (docs/UNWIND.md). That
# thread (b: the sleeper, sleeping by a "syscall" of its own) gets its
# vector registers back too: ymm15's upper half, zmm31 and k1 held across
# its system call came back reset when the frame carried only the legacy
# FPU and SSE state.
. "$(dirname "$0")/lib.bash"
require_ptrace

mask() { awk '/^SigBlk:/ { print $2 }' "/proc/$1/task/$2/status" 2>/dev/null || true; }
tracer() { awk '/^TracerPid:/ { print $2 }' "/proc/$1/task/$2/status" 2>/dev/null || true; }

arena_held a idle
"$HPATCH" revert -p "$pid" >"$T/a.out" 2>"$T/a.err" &
hp=$!
sleep 2
check "a: the deregistration waited on past its 1 s bound" kill -0 "$hp"
arena_drain a
rc=0
wait "$hp" || rc=$?
check "a: revert done (exit $rc: $(head -c 300 "$T/a.err"))" test "$rc" = 0
check "a: old code, unwinding again" wait_round_in "$log" "sum=$v1"
as_before() { test "$(code_maps "$pid")" -eq "$rx"; }
check "a: the region unmapped" collected "$pid" as_before
unharmed "$pid"

arena_held b vec
sleeper=$(sed -n 's/^vec tid=//p' "$log")
"$HPATCH" revert -p "$pid" --timeout 1000 >"$T/b.out" 2>"$T/b.err" || true
tid=$(sed -n "s/.*tid \([0-9]*\): hpatch's call of .* left to finish on its own.*/\1/p" "$T/b.err" | head -1)
check "b: the call left to finish on its own, said (tid $tid)" test -n "$tid"
check "b: ... in the sleeper (tid $sleeper)" test "$tid" = "$sleeper"
check "b: the region kept, said" grep -q "stays mapped, unused" "$T/b.err"
check "b: tid $tid let go, inside the call" test "$(tracer "$pid" "$tid")" = 0
m=$(mask "$pid" "$tid")
check "b: ... its signals blocked meanwhile ($m)" test "${m#fffffffffff}" != "$m"
arena_drain b
check "b: tid $tid back in its own code, its mask its own" \
	wait_until 5 bash -c "[ \$(awk '/^SigBlk:/ { print \$2 }' /proc/$pid/task/$tid/status) = 0000000000000000 ]"
check "b: ... sleeping again" wait_thread "$pid" "$tid" sleep
check "b: ... its vector registers its own" bash -c "sleep 0.2; ! grep -q '^vec lost' '$log'"
check "b: old code, unwinding again" wait_round_in "$log" "sum=$v1"
expect_exit 3 "b: a later hpatch finds no patch" "$HPATCH" revert -p "$pid"
check "b: ... and leaves the region mapped" test "$(code_maps "$pid")" -eq $((rx + 1))
check "b: still unwinding" wait_round_in "$log" "sum=$v1"
unharmed "$pid"
finish
