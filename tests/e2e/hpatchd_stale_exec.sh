#!/usr/bin/env bash
# A process's exec event may be read after hpatchd has patched the image
# it made: the pass that applies a patch just installed lists a process
# exec'd a moment before, and its event, still in the socket then, is read
# during or after the pass. That event is no sign of a new image: hpatchd
# must find the patch there, quietly ("already applied" is no error), and
# record one apply. An exec since the apply is a new image: patched again.
#
# hpatchd's output goes through a pipe that this test fills, so that it
# waits, in the write of its "store ... installed" line, between reading
# the events and listing the processes: the target starts then.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc stale
agent_policy '[apply]' 'retry = 100ms'
mkfifo "$T/out.pipe"
cat "$T/out.pipe" >>"$T/hpatchd.log" &
copier=$!
PIDS+=("$copier")
AGENT_OUT=$T/out.pipe start_agent

# The copier stops, the pipe is filled: hpatchd's next line waits.
kill -STOP "$copier"
dd if=/dev/zero of="$T/out.pipe" bs=1 count=100000 oflag=nonblock \
	2>/dev/null || true
agent_install
in_write() {
	local nr _
	read -r nr _ <"/proc/$AGENT_PID/syscall" && [ "$nr" = 1 ]
}
check "hpatchd waits in its write after the install" wait_until 10 in_write
start_target "$T/bin/svc-v1" "$T/p.log" 1
p=$TARGET_PID
kill -CONT "$copier"
check "pid $p patched" wait_until 10 has_patch "$p" "$id"
applies() { grep -c "\"action\":\"apply\",\"pid\":$p,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG"; }

# Its image made again: the new one is patched (a second apply). The
# events are read in order: the stale one has been dealt with by then.
open_conn 3 "$TARGET_PORT"
check "reexec asked" test "$(ask 3 reexec)" = ok
exec 3>&-
two_applies() { [ "$(applies)" -eq 2 ]; }
check "its new image patched again" wait_until 10 two_applies
check "pid $p patched" has_patch "$p" "$id"
check "one apply per image ($(applies))" test "$(applies)" -eq 2
check "no error logged" bash -c "! grep -a 'error' '$T/hpatchd.log'"
finish
