#!/usr/bin/env bash
# As frozen_mid_apply.sh, with hpatch inside the target's cgroup namespace
# but not in its cgroups: an operator's `nsenter -t PID -a hpatch ...`
# into a container (nsenter joins the namespaces, not the cgroups). The
# container's v1 freezer is mounted at its namespace's root, the
# container's cgroup, which has no cgroup below it (link count 2) and
# which docker pause or lxc-freeze freezes all the same: the count says
# nothing there. hpatch must not resume the frozen thread for a call:
# busy (exit 4), and thawed, the target runs on unharmed.
. "$(dirname "$0")/lib.bash"
require_ptrace

freezer_cgroup
if [ "${FZ%/*}" = /sys/fs/cgroup/freezer ]; then
	MNT=/sys/fs/cgroup/freezer FS="-t cgroup -o freezer" PROCS=tasks LINE='[0-9]*:freezer:'
else # (v2's, where the host has no v1 freezer)
	MNT=$FZ_ROOT FS="-t cgroup2" PROCS=cgroup.procs LINE='0::'
fi

svc_and_patch unwinder
join "$pid"
# A cgroup namespace rooted at $FZ, with the freezer's hierarchy mounted
# at its root in a mount namespace of its own (the container's view); the
# holder leaves $FZ once there, as hpatch is never in it.
unshare_in_fz() {
	echo $BASHPID >"$FZ/$PROCS"
	exec unshare -C -m --propagation private sh -c \
		'umount "$2" && mount $1 hp-test "$2" && touch "$3" && exec sleep 600' \
		sh "$FS" "$MNT" "$T/ns.ready"
}
unshare_in_fz &
ns=$!
PIDS+=("$ns")
check "a cgroup namespace rooted at the target's cgroup" \
	wait_until 5 test -e "$T/ns.ready"
echo "$ns" >"$MNT/$PROCS"
in_ns() { nsenter -t "$ns" -C -m -- "$@"; }
check "there, the target is in the root" \
	grep -qx "$LINE/" <(in_ns cat "/proc/$pid/cgroup")
check "which has no cgroup below it" test "$(in_ns stat -c %h "$MNT")" = 2
check "and hpatch is outside it" \
	grep -qx "$LINE/\.\..*" <(in_ns cat /proc/self/cgroup)

frozen_mid_apply in_ns
finish
