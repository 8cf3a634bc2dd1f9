#!/usr/bin/env bash
# Issue 14, case 3: targets under seccomp. hpatch reads each filter and
# runs it on every system call it would inject: where the filter would
# kill the process or the thread (or trap, or wait for a supervisor),
# it refuses before injecting, naming the thread, the call and why; a
# filter that allows what hpatch needs is no obstacle: systemd's
# MemoryDenyWriteExecute=yes (its seccomp filter, and the kernel's
# PR_SET_MDWE) among them, as hpatch maps the patch's code executable and
# never writable. Nothing waits without a bound.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p
apply() { timeout -s KILL 30 "$HPATCH" apply -p "$1" --trust "$T/trust" "$T/p.hpatch"; }
# wait_strict PID: until PID's main thread has entered seccomp strict mode.
wait_strict() {
	for _ in $(seq 100); do
		grep -q '^Seccomp:.*1' "/proc/$1/status" && return
		sleep 0.02
	done
}

for rule in kill-process kill-thread mdwe other; do
	start_target "$HP_TD/hostile" "$T/$rule.log" seccomp "$rule" \
		"$HP_TD/svc-v1" 1
	pid=$TARGET_PID
	open_conn 3 "$TARGET_PORT"
	check "$rule: the target runs under a filter" grep -q '^Seccomp:.*2' "/proc/$pid/status"
	ask 3 version >/dev/null # the connection's thread (and stack) exists
	cat "/proc/$pid/maps" >"$T/maps.before"
	threads=$(nr_tasks "$pid")
	if [ "$rule" = mdwe ]; then
		check "$rule: an mprotect adding exec is refused there" \
			grep -q "mprotect(PROT_EXEC): refused" "$T/$rule.log"
	fi
	if [ "$rule" = other ] || [ "$rule" = mdwe ]; then
		expect_exit 0 "$rule: a filter that allows what hpatch needs: applied" apply "$pid"
		check "$rule: v2" test "$(ask 3 version)" = v2
		expect_exit 0 "$rule: revert" timeout -s KILL 30 "$HPATCH" revert -p "$pid"
	else
		expect_exit 1 "$rule: refused" apply "$pid"
		check "$rule: names the thread, the call and the filter" \
			grep -qE "tid $pid: a seccomp filter would .* (mmap|mprotect)" "$T/last.err"
		cat "/proc/$pid/maps" >"$T/maps.after" 2>/dev/null || true
		check "$rule: nothing was mapped" cmp -s "$T/maps.before" "$T/maps.after"
	fi
	check "$rule: the target still runs" kill -0 "$pid"
	check "$rule: every thread too ($threads)" test "$(nr_tasks "$pid" 2>/dev/null)" -eq "$threads"
	check "$rule: answers v1" test "$(ask 3 version)" = v1
	exec 3>&-
	kill -9 "$pid" 2>/dev/null || true
done

# Strict mode (read, write, exit only: anything else kills the thread) is
# a thread's own: the main thread enters it while a thread of its own
# serves. hpatch runs its calls (and its unwinder's) through that other
# thread, never the strict one: applied, and reverted.
start_target "$HP_TD/svc-v1" "$T/strict.log" 1 main-strict
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
wait_strict "$pid"
check "strict: the main thread runs in strict mode" grep -q '^Seccomp:.*1' "/proc/$pid/status"
ask 3 version >/dev/null
threads=$(nr_tasks "$pid")
expect_exit 0 "strict: applied through a thread not strict" apply "$pid"
check "strict: v2" test "$(ask 3 version)" = v2
expect_exit 0 "strict: reverted" timeout -s KILL 30 "$HPATCH" revert -p "$pid"
check "strict: v1 again" test "$(ask 3 version)" = v1
# An apply collects the reverted region, through a thread of the stopped
# world: not the strict one either.
expect_exit 0 "strict: applied again" apply "$pid"
check "strict: the target still runs" kill -0 "$pid"
check "strict: every thread too ($threads)" test "$(nr_tasks "$pid" 2>/dev/null)" -eq "$threads"
check "strict: the main thread is still in strict mode" grep -q '^Seccomp:.*1' "/proc/$pid/status"
check "strict: answers v2" test "$(ask 3 version)" = v2
exec 3>&-
kill -9 "$pid" 2>/dev/null || true

# Every thread strict: none can run a call. Refused up front, naming it.
start_target "$HP_TD/svc-v1" "$T/all-strict.log" 0 all-strict
pid=$TARGET_PID
wait_strict "$pid"
check "all strict: one thread, in strict mode" \
	test "$(nr_tasks "$pid")-$(awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status")" = 1-1
cat "/proc/$pid/maps" >"$T/maps.before"
expect_exit 1 "all strict: refused" apply "$pid"
check "all strict: names the thread and the mode" \
	grep -q "tid $pid: runs in seccomp strict mode" "$T/last.err"
cat "/proc/$pid/maps" >"$T/maps.after" 2>/dev/null || true
check "all strict: nothing was mapped" cmp -s "$T/maps.before" "$T/maps.after"
check "all strict: the target still runs" kill -0 "$pid"
finish
