#!/usr/bin/env bash
# frozen_thread.sh with cgroup v2's freezer, which takes a thread alone
# in a threaded cgroup, and lets it stop for hpatch but not run: a thread
# frozen inside a function the patch changes stays in it until thawed.
# hpatch says so at once: busy (exit 4), the thread and the function
# named, the hint to thaw. It retried until --timeout instead, then said
# the function was still in use, not why.
. "$(dirname "$0")/lib.bash"
require_ptrace

V2=/sys/fs/cgroup
[ -f "$V2/cgroup.controllers" ] || V2=/sys/fs/cgroup/unified
if [ ! -w "$V2/cgroup.procs" ]; then
	echo "skip: needs cgroup v2, to freeze one thread alone" >&2
	exit 77
fi
CG=$V2/hpatch-test-$$
mkdir "$CG" "$CG/t"
release_cg() {
	echo 0 >"$CG/t/cgroup.freeze"
	for p in $(cat "$CG/cgroup.procs"); do echo "$p" >"$V2/cgroup.procs"; done
	rmdir "$CG/t" "$CG"
}
trap 'release_cg 2>/dev/null; cleanup' EXIT
frozen() { grep -qx "frozen 1" "$CG/t/cgroup.events"; }
held_reply() { local line; IFS= read -r -t 10 line <&4 && [ -n "$line" ]; }

svc_and_patch
open_conn 4 "$TARGET_PORT"
ask 4 version >/dev/null # its thread exists
htid=$(newest_tid "$pid")
echo "hold 4000" >&4 # a thread now sleeps inside hold()
wait_thread "$pid" "$htid" sleep
echo "$pid" >"$CG/cgroup.procs"
echo threaded >"$CG/t/cgroup.type"
echo "$htid" >"$CG/t/cgroup.threads"
echo 1 >"$CG/t/cgroup.freeze"
check "tid $htid alone frozen" wait_until 5 frozen

apply_frozen "a thread frozen in 'hold'" \
	"pid $pid: tid $htid: 'hold' in use, and its cgroup is frozen; nothing changed"
check "the hint says to thaw it" grep -q "retry once it is thawed" "$T/last.err"
[ "$FAILED" = 0 ] || cat "$T/last.err" >&2

echo 0 >"$CG/t/cgroup.freeze"
check "thawed, the held call ends" held_reply
old_then_applied
finish
