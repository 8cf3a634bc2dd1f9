#!/usr/bin/env bash
# A thread stopped by a signal (SIGSTOP, job control), by another tracer
# or in a frozen cgroup holds whatever lock it held when it stopped, for
# as long as it stays so: here the main arena's, taken by malloc_stats
# writing to a full FIFO, and the process then stopped with SIGSTOP.
# libgcc's deregistration, made in another thread (resumed by hpatch in a
# process stopped on purpose), would free() its sorted table holding
# object_mutex and wait for that lock past its first. So the unwinder is
# not called while a thread cannot run: revert switches back, names the
# stopped thread and says to continue it, and keeps the region; once the
# process is continued a later hpatch deregisters and unmaps it.
. "$(dirname "$0")/lib.bash"
require_ptrace

states() { cat /proc/"$pid"/task/*/stat | sed 's/.*) \(.\).*/\1/' | sort -u | tr -d '\n'; }

arena_held a idle
kill -STOP "$pid"
for _ in $(seq 100); do [ "$(states)" = T ] && break; sleep 0.05; done
check "every thread stopped" test "$(states)" = T

t0=$(date +%s%N)
"$HPATCH" revert -p "$pid" --timeout 3000 >"$T/r.out" 2>"$T/r.err" || true
ms=$((($(date +%s%N) - t0) / 1000000))
check "the unwinder not called, at once (${ms} ms)" test "$ms" -lt 1000
check "... a stopped thread named, with what to do" \
	grep -Eq "tid [0-9]+ is stopped by a signal .*not called" "$T/r.err"
check "... continue it" grep -q "kill -CONT" "$T/r.err"
check "nothing left inside a call, nothing traces it" \
	bash -c "! grep -q 'left to finish' '$T/r.err' && ! grep -qv '^TracerPid:[[:space:]]*0$' <(grep -h TracerPid /proc/$pid/task/*/status)"
check "the process still stopped" test "$(states)" = T
check "the region kept" test "$(code_maps "$pid")" -eq $((rx + 1))

kill -CONT "$pid"
arena_drain a
check "old code, unwinding" wait_round_in "$log" "sum=$v1"
arena_collect
check "still unwinding" wait_round_in "$log" "sum=$v1"
unharmed "$pid"
finish
