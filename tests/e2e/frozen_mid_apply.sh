#!/usr/bin/env bash
# A target frozen (docker pause, systemctl freeze) while hpatch holds it
# stopped, between two of the system calls it injects (mmap, then
# mprotect): v1's freezer freezes it where it stops for hpatch, and once
# resumed for the next call it runs nothing, and stops for nothing, until
# thawed; by then hpatch has exited and the kernel let it go inside
# hpatch's call, with hpatch's registers and every signal blocked (seen:
# killed by the step's SIGTRAP as it was thawed). hpatch must not resume a
# frozen thread for a call: busy (exit 4), and thawed, the target runs on
# unharmed, its own mask and registers back.
. "$(dirname "$0")/lib.bash"
require_ptrace

freezer_cgroup
held() { grep -q '^State:[[:space:]]*t' "/proc/$1/status"; }

svc_and_patch
join "$pid"
# Frozen once hpatch holds it (it has mapped; its mprotect waits 1.5 s).
(wait_until 10 held "$pid" && freeze) &
freezer=$!
HPATCH_DELAY=mprotect:1500 expect_exit 4 "apply -p: busy, frozen mid-apply" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
wait "$freezer"
check "the hint says why" grep -q "its cgroup is frozen" "$T/last.err"
thaw
sleep 0.3
unharmed "$pid"
check "thawed: pid $pid serves v1" test "$(ask 3 version)" = v1
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
finish
