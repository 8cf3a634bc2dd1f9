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

log=$T/t.log
round() { wait_round_in "$log" "$1"; }
# code regions: the anonymous executable mappings of the process
code_maps() { grep -cE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$pid/maps" || true; }
sum() { grep '^round ' "$log" | tail -n 1 | sed -n 's/.* sum=\([0-9]*\).*/\1/p'; }

make_key k
build_patch unwind_lock "$T/p.hpatch" --key "$T/k.key" --id p
mkfifo "$T/fifo"
exec 4<>"$T/fifo"
start_target "$HP_TD/unwind_lock-v1" "$log" "$T/fifo" self
pid=$TARGET_PID
check "rounds" round 'sum='
rx=$(code_maps)
v1=$(sum)
v2=$((v1 + 200 * 4096))
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "patched: sum $v2, a backtrace since (libgcc sorted the table)" round "sum=$v2"

touch "$T/fifo.go"
for _ in $(seq 100); do grep -q '^held tid=' "$log" && break; sleep 0.05; done
tid=$(sed -n 's/^held tid=\([0-9]*\)/\1/p' "$log")
check "tid $tid holds the arena's lock, waiting in write()" \
	wait_until 5 bash -c "read -r nr _ </proc/$pid/task/$tid/syscall && [ \"\$nr\" = 1 ]"
check "the sleeper has exited: main and tid $tid left" \
	wait_until 5 bash -c "[ \$(ls /proc/$pid/task | wc -l) = 2 ]"

"$HPATCH" revert -p "$pid" >"$T/revert.out" 2>"$T/revert.err" || true
check "no thread fit to deregister, said" \
	grep -q "no thread waits in a system call clear of" "$T/revert.err"
check "... naming the allocator" grep -q "allocator" "$T/revert.err"
check "old code again" round "sum=$v1"

cat <&4 >/dev/null &
PIDS+=($!)
check "tid $tid lets go of the lock" wait_until 5 grep -q '^released' "$log"
check "the process unwinds after (backtrace: no lock left held)" round "sum=$v1"
check "the region kept meanwhile" test "$(code_maps)" -eq $((rx + 1))
for _ in $(seq 50); do
	"$HPATCH" revert -p "$pid" >/dev/null 2>&1 || true
	[ "$(code_maps)" -eq "$rx" ] && break
	sleep 0.1
done
check "a later hpatch deregisters and unmaps it" test "$(code_maps)" -eq "$rx"
check "still unwinding" round "sum=$v1"
unharmed "$pid"
exec 4>&-
finish
