#!/usr/bin/env bash
# cgroup v2's freezer is hierarchical: a cgroup frozen freezes every
# cgroup below it, whose own cgroup.freeze still says 0 (systemctl freeze
# of a slice, docker pause of a container whose processes sit in
# sub-cgroups of its own). A target in such a sub-cgroup is frozen all
# the same: hpatch apply gives up at once, busy (exit 4), and says why,
# rather than wait its whole --timeout for an instruction never run.
. "$(dirname "$0")/lib.bash"
require_ptrace

root=/sys/fs/cgroup
[ -f "$root/cgroup.controllers" ] || root=/sys/fs/cgroup/unified
FZ=$root/hpatch-test-$$
mkdir "$FZ" "$FZ/inner"
thaw() { echo 0 >"$FZ/cgroup.freeze"; }
leave_fz() { local p; for p in $(cat "$FZ/inner/cgroup.procs"); do echo "$p" >"$root/cgroup.procs"; done; }
trap 'thaw 2>/dev/null; leave_fz 2>/dev/null; rmdir "$FZ/inner" "$FZ" 2>/dev/null; cleanup' EXIT
frozen() { grep -qx "frozen 1" "$FZ/inner/cgroup.events"; }

svc_and_patch
echo "$pid" >"$FZ/inner/cgroup.procs"
echo 1 >"$FZ/cgroup.freeze"
check "pid $pid frozen (its parent cgroup frozen)" wait_until 5 frozen
check "its own cgroup.freeze says 0" test "$(cat "$FZ/inner/cgroup.freeze")" = 0

apply_frozen "frozen" "its cgroup is frozen" 1500

thaw
check "thawed: nothing traces pid $pid" wait_until 3 bash -c \
	"grep -q '^TracerPid:[[:space:]]*0$' /proc/$pid/status"
check "pid $pid serves v1" test "$(ask 3 version)" = v1
finish
