#!/usr/bin/env bash
# 512 threads, every one blocked in a system call: 254 in nanosleep, 254
# in a futex wait, the acceptor in accept and three connection threads in
# read on their sockets. Apply and revert: each call resumes as it was,
# none sees EINTR, the connections answer with the new code, then the old.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
start_target "$HP_TD/svc-v1" "$T/svc.log" 254
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
open_conn 4 "$TARGET_PORT"
open_conn 5 "$TARGET_PORT"
check "v1 on every connection" \
	test "$(ask 3 version)-$(ask 4 version)-$(ask 5 version)" = v1-v1-v1
for _ in $(seq 100); do [ "$(nr_tasks "$pid")" -eq 512 ] && break; sleep 0.05; done
check "512 threads ($(nr_tasks "$pid"))" test "$(nr_tasks "$pid")" -eq 512
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
check "apply stopped all 512" grep -q "threads: 512" "$T/last.out"
check "v2 on every connection" \
	test "$(ask 3 version)-$(ask 4 'price 10')-$(ask 5 'hold 1')" = "v2-95-held v2"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 4 version)-$(ask 3 'price 10')" = v1-100
check "no system call saw EINTR" test "$(ask 3 eintr)" = 0
check "still 512 threads ($(nr_tasks "$pid"))" test "$(nr_tasks "$pid")" -eq 512
exec 3>&- 4>&- 5>&-
finish
