#!/usr/bin/env bash
# The perf maps of processes hpatchd patched are removed once the process
# has been gone for the policy's [perf] keep_exited, and at most
# max_exited are kept (the oldest go first), also of a process that
# exec'd since; a map holding any line that is not hpatch's (a JIT's) is
# never removed. Without this, every
# short-lived patched process leaves a file in /tmp.
. "$(dirname "$0")/lib.bash"
require_ptrace

map() { echo "/tmp/perf-$1.map"; }
gone() { [ ! -e "$(map "$1")" ]; }
# patched_svc: start svc-v1 from $T/bin, wait for hpatchd's patch and its
# map; the pid in $pid.
patched_svc() {
	start_target "$T/bin/svc-v1" "$T/svc-$1.log" 1
	pid=$TARGET_PID
	check "pid $pid patched ($1)" wait_until 10 has_patch "$pid" "$id"
	check "pid $pid has its perf map ($1)" grep -q "\[hpatch:$id\]" "$(map "$pid")"
}
end() { kill "$1" && wait "$1" 2>/dev/null || true; }

agent_svc perfmap
agent_policy '[perf]' 'keep_exited = 0'
agent_install
start_agent

# Removed once it exited (and was reaped).
patched_svc removed
a=$pid
end "$a"
check "pid $a's map removed after its exit" wait_until 10 gone "$a"

# A JIT's line in it: kept. Its exit comes first, so once the next one's
# map is gone, hpatchd has looked at this one.
patched_svc jit
b=$pid
echo "7f0000004000 40 Interpreter" >>"$(map "$b")"
patched_svc plain
c=$pid
end "$b"
end "$c"
check "pid $c's map removed" wait_until 10 gone "$c"
check "pid $b's map with a JIT's line kept" grep -q Interpreter "$(map "$b")"

# Patched, then exec'd into an image hpatchd leaves alone (excluded
# since): its tracks go with the image, its map (the old image's lines)
# is removed all the same once it exits.
patched_svc execd
f=$pid
agent_policy '[perf]' 'keep_exited = 0' '[exclude]' "exe = $T/bin/*"
kill -HUP "$AGENT_PID"
check "policy reloaded" wait_until 10 grep -q "SIGHUP: reloading" "$T/hpatchd.log"
open_conn 3 "$TARGET_PORT"
check "reexec asked" test "$(ask 3 reexec)" = ok
exec 3>&-
ready_twice() { [ "$(grep -c ready "$T/svc-execd.log")" -ge 2 ]; }
check "its new image runs" wait_until 10 ready_twice
sleep 0.3 # hpatchd saw the exec
end "$f"
check "pid $f's map removed after its exit, exec'd since" wait_until 10 gone "$f"

# Kept an hour, but at most one: the older goes when the second exits.
kill "$AGENT_PID" && wait "$AGENT_PID" 2>/dev/null
agent_policy '[perf]' 'keep_exited = 1h' 'max_exited = 1'
start_agent
patched_svc first
d=$pid
patched_svc second
e=$pid
end "$d"
sleep 0.5
check "pid $d's map kept for now" test -e "$(map "$d")"
end "$e"
check "pid $d's map removed when a second exited" wait_until 10 gone "$d"
check "pid $e's map kept" test -e "$(map "$e")"

# Processes that exit while hpatchd is down (killed, restarted): their
# maps, in no queue, are found at the next start and removed after
# keep_exited from their last write; one written in the last minute
# may be another hpatch's to handle, and is left.
patched_svc old
g=$pid
patched_svc young
h=$pid
kill -9 "$AGENT_PID" && wait "$AGENT_PID" 2>/dev/null || true
end "$g"
end "$h"
touch -m -d '2 minutes ago' "$(map "$g")"
agent_policy '[perf]' 'keep_exited = 30s'
start_agent
check "pid $g's map, from before the start, removed" wait_until 10 gone "$g"
check "pid $h's map, written within a minute, kept" test -e "$(map "$h")"
check "said so" grep -q "perf maps\? of processes gone before this start" "$T/hpatchd.log"
finish
