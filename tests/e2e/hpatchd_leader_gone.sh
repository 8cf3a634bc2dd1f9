#!/usr/bin/env bash
# A process whose main thread has exited (pthread_exit in main) while
# its other threads serve is still a process to patch: its leader is a
# zombie, with no executable, no maps and state Z in /proc/PID; hpatchd
# reads them through a live thread, and patches it, running before
# hpatchd starts or started after.
. "$(dirname "$0")/lib.bash"
require_ptrace

agent_svc leadergone
agent_policy '[apply]' 'retry = 100ms'
agent_install
leader_gone() { grep -q '^State:.*Z' "/proc/$1/status"; }
start_target "$T/bin/svc-v1" "$T/a.log" 1 main-exits
a=$TARGET_PID
check "pid $a: its main thread is gone" wait_until 5 leader_gone "$a"
start_agent
check "pid $a (running before hpatchd) patched" \
	wait_until 10 has_patch "$a" "$id"
start_target "$T/bin/svc-v1" "$T/b.log" 1 main-exits
b=$TARGET_PID
check "pid $b: its main thread is gone" wait_until 5 leader_gone "$b"
check "pid $b (started since) patched" wait_until 10 has_patch "$b" "$id"
open_conn 3 "$TARGET_PORT"
check "pid $b answers with the patched code" test "$(ask 3 version)" = v2
exec 3>&-
finish
