#!/usr/bin/env bash
# The store's lock keeps hpatchd's applies and the CLI's reverts apart:
# hpatchd takes it for each pass over the processes due, and holds it
# between passes for no one. A lock file removed and made again (by an
# operator, by a CLI that found none) is the one locked from then on: a
# process started while another holds the new file waits for its patch
# until that holder lets go.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc lock
agent_policy '[apply]' 'retry = 100ms'
agent_install
start_agent

start_target "$T/bin/svc-v1" "$T/a.log" 1
a=$TARGET_PID
check "pid $a patched" wait_until 10 has_patch "$a" "$id"
lock_free() { flock -n "$AGENT_STORE/.lock" true; }
check "the lock is free between passes" wait_until 5 lock_free

# hold FILE: lock FILE in another process (its fd not inherited by the
# targets started meanwhile) until let_go: however slow the host, the
# holder outlives the checks. Returns once the holder has the lock: that
# FILE is locked says nothing of who holds it (hpatchd, in a pass, may).
hold() {
	rm -f "$T/holding"
	flock -o "$1" sh -c ": >'$T/holding'; exec sleep 60" &
	holder=$!
	PIDS+=("$holder")
	wait_until 10 test -e "$T/holding"
}
let_go() {
	local child
	child=$(pgrep -P "$holder" || true)
	kill "$holder" $child 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
}
held() { ! lock_free; }

# A new lock file, held by someone else.
rm -f "$AGENT_STORE/.lock"
check "the new lock file is held by its holder" hold "$AGENT_STORE/.lock"
start_target "$T/bin/svc-v1" "$T/b.log" 1
b=$TARGET_PID
sleep 1.5
check "pid $b not patched while the new lock is held" no_patch "$b"
let_go
check "pid $b patched once it is let go" wait_until 10 has_patch "$b" "$id"

# The same with a lock file renamed over the old one.
: >"$T/lock.new"
hold "$T/lock.new"
mv "$T/lock.new" "$AGENT_STORE/.lock"
check "the renamed lock file is held" held
start_target "$T/bin/svc-v1" "$T/c.log" 1
c=$TARGET_PID
sleep 1.5
check "pid $c not patched while it is held" no_patch "$c"
let_go
check "pid $c patched once it is let go" wait_until 10 has_patch "$c" "$id"
finish
