#!/usr/bin/env bash
# The allocator whose lock the deregistration's free() may wait for is the
# program's: with one preloaded (LD_PRELOAD, as jemalloc or tcmalloc often
# are), that library's, though libc.so.6, which defines free too, is mapped
# below it. Here the preloaded allocator's malloc_stats holds its lock
# writing to a full FIFO, in the only thread waiting in a system call
# (main keeps a word pointing into libgcc_s): the call must not be made in
# it, where free() would wait for its own thread for ever, holding libgcc's
# object_mutex (every later backtrace of the process would hang). As in
# unwind_lock_self.sh: revert switches back, keeps the table registered
# and says why. (No later hpatch here: the holder, released, waits in
# pause() over a stale return address into the preloaded malloc_stats,
# which counts, in the Debian flavour's frames.)
. "$(dirname "$0")/lib.bash"
require_ptrace

lib=$HP_TD/libown_malloc.so
check "the allocator to preload is built" test -f "$lib"
arena_held a self "$lib"
check "the allocator preloaded" \
	grep -q "libown_malloc" "/proc/$pid/maps"
check "the sleeper has exited: main and tid $holder left" \
	wait_until 5 bash -c "[ \$(ls /proc/$pid/task | wc -l) = 2 ]"
"$HPATCH" revert -p "$pid" --timeout 2000 >"$T/revert.out" 2>"$T/revert.err" || true
check "no thread fit to deregister, said" \
	grep -q "no thread waits in a system call clear of" "$T/revert.err"
check "... not left inside a call" bash -c "! grep -q 'left to finish on its own' '$T/revert.err'"
check "old code again" wait_round_in "$log" "sum=$v1"
arena_drain a
check "the process unwinds after (backtrace: no lock left held)" wait_round_in "$log" "sum=$v1"
check "the region kept, registered, for a later hpatch" \
	test "$(code_maps "$pid")" -eq $((rx + 1))
check "still unwinding" wait_round_in "$log" "sum=$v1"
unharmed "$pid"
finish
