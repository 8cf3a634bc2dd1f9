#!/usr/bin/env bash
# A failed apply's undo unmaps the region it mapped, through one stopped
# thread. The thread it mapped through may stop no more by then (asleep
# where no interrupt reaches it: a hung file system, a vfork wait, a
# frozen cgroup; or still inside an earlier try's injected call): another
# thread of the process serves, and the region is unmapped. It was left
# mapped for good, unused, found by no later hpatch (no header written
# yet). Here the apply fails at its write (HPATCH_FAULT=write) and,
# meanwhile (HPATCH_DELAY=write), the thread it mapped through, the
# leader, alone is frozen: v1's freezer takes single threads. With every
# thread frozen, none serves: the undo says so, naming the leader.
. "$(dirname "$0")/lib.bash"
require_ptrace

thread_freezer

# The region is mapped read+execute: the target has no other anonymous
# executable mapping.
no_region() {
	! grep -qE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$pid/maps"
}
not() { ! "$@"; }
held() { grep -q '^State:[[:space:]]*t' "/proc/$pid/task/$1/status"; }

# undo_with_frozen TIDS...: the apply fails at its write; the TIDS are
# frozen while it waits there, the leader held stopped for it.
undo_with_frozen() {
	local t freezer
	for t in "$@"; do echo "$t" >"$FZ/tasks"; done
	(wait_until 10 held "$pid" && echo FROZEN >"$FZ/freezer.state") &
	freezer=$!
	HPATCH_FAULT=write HPATCH_DELAY=write:1500 expect_exit 1 \
		"apply fails at its write" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
	wait "$freezer"
	check "the fault" grep -q "fault injected at step 'write'" "$T/last.err"
	check "the leader was frozen" grep -q FROZEN "$FZ/freezer.state"
}

svc_and_patch
undo_with_frozen "$pid"
check "the undo unmapped the region through another thread" no_region
check "... saying nothing of the leader" \
	not grep -qE "cannot unmap|tid $pid would not stop" "$T/last.err"
thaw_all
old_then_applied
exec 3>&-

# Every thread frozen: none serves, and the leader is named.
start_target "$HP_TD/svc-v1" "$T/b.log" 1
pid=$TARGET_PID
undo_with_frozen $(ls "/proc/$pid/task")
check "the undo could not unmap the region" \
	grep -q "pid $pid: cannot unmap patch region" "$T/last.err"
check "... naming the leader, which would not stop" \
	grep -q "pid $pid: tid $pid would not stop" "$T/last.err"
thaw_all
sleep 0.3
unharmed "$pid"
finish
