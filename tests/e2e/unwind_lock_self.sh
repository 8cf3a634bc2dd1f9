#!/usr/bin/env bash
# libgcc 12's __deregister_frame_info frees the table it sorted for the
# patch holding its object_mutex (docs/UNWIND.md), and free() of a chunk
# larger than malloc's per-thread cache takes the arena's lock. A thread
# inside the allocator holds that lock, and may wait in a system call
# meanwhile (malloc_stats writing to a full pipe; sysmalloc's mmap; fork's
# clone): the call must not be made in it, where free() would wait for its
# own thread. Here that thread is the only one waiting in a system call
# (main keeps a word pointing into libgcc_s on its stack): revert switches
# back, leaves the table registered (its region retired) and says why;
# once the thread lets go of the lock the process unwinds as before, and a
# later hpatch deregisters the table and unmaps the region.
. "$(dirname "$0")/lib.bash"
require_ptrace

arena_held a self
check "the sleeper has exited: main and tid $holder left" \
	wait_until 5 bash -c "[ \$(ls /proc/$pid/task | wc -l) = 2 ]"
"$HPATCH" revert -p "$pid" >"$T/revert.out" 2>"$T/revert.err" || true
check "no thread fit to deregister, said" \
	grep -q "no thread waits in a system call clear of" "$T/revert.err"
check "... naming the allocator" grep -q "allocator" "$T/revert.err"
check "... and why each thread is not fit: tid $holder's stack" \
	grep -q "tid $holder: the word at sp+0x[0-9a-f]* points into malloc_stats" \
	"$T/revert.err"
check "... and main's" \
	grep -q "tid $pid: the word at sp+0x[0-9a-f]* points into libgcc_s" \
	"$T/revert.err"
check "old code again" wait_round_in "$log" "sum=$v1"
arena_drain a
check "the process unwinds after (backtrace: no lock left held)" wait_round_in "$log" "sum=$v1"
check "the region kept meanwhile" test "$(code_maps "$pid")" -eq $((rx + 1))
arena_collect
check "still unwinding" wait_round_in "$log" "sum=$v1"
unharmed "$pid"
finish
