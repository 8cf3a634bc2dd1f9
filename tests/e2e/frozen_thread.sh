#!/usr/bin/env bash
# One thread of a target in a frozen cgroup, the others not (v1's freezer
# takes single threads: a cgroup manager's move of one, a tool that
# freezes a task list). The mapping runs through a thread that is not
# frozen; the switch cannot stop the frozen one, which stops for nothing
# until thawed. hpatch says so at once, as for a target frozen whole
# (frozen_target.sh): busy (exit 4), the thread named, the hint to thaw,
# nothing changed. It retried until --timeout instead (5 s by default),
# stopping every other thread for a stop's bound (250 ms) at each of
# 17 tries.
. "$(dirname "$0")/lib.bash"
require_ptrace

thread_freezer
frozen() { [ "$(cat "$FZ/freezer.state")" = FROZEN ]; }
# The region is mapped read+execute: the target has no other anonymous
# executable mapping.
no_region() {
	! grep -qE '^[0-9a-f]+-[0-9a-f]+ r-xp 00000000 00:00 0 *$' "/proc/$pid/maps"
}

svc_and_patch
# A worker: not the leader, the thread the mapping runs through.
tid=$(ls "/proc/$pid/task" | sort -n | sed -n 2p)
echo "$tid" >"$FZ/tasks"
echo FROZEN >"$FZ/freezer.state"
check "tid $tid alone frozen" wait_until 5 frozen

apply_frozen "a thread frozen" \
	"pid $pid: tid $tid would not stop (.*): its cgroup is frozen; every thread was let go, nothing changed"
check "the hint says to thaw it" grep -q "retry once it is thawed" "$T/last.err"
check "nothing left mapped" no_region
[ "$FAILED" = 0 ] || cat "$T/last.err" >&2

thaw_all
old_then_applied
finish
