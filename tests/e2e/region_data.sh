#!/usr/bin/env bash
# The patch region's data part is made writable (an mprotect run in the
# target, one more stop of its thread) only where something writes it:
# the patch's own data or bss, or the unwinder's object once an unwinder
# is loaded to register the unwind table in it. A C program with no
# libgcc_s loaded and a patch whose only bss is that object (the common
# case of a storm of new processes) gets one system call run in it, the
# mmap; its region stays read+execute throughout. With libgcc_s loaded,
# the same patch's data part is read+write and the table is registered;
# a patch with a static buffer of its own gets it read+write without one.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
build_patch ifunc "$T/ifunc.hpatch" --key "$T/k.key"
check "the svc patch's only bss is the unwinder's object" \
	bash -c "'$HPATCH' inspect --trust '$T/trust' '$T/svc.hpatch' |
		grep -qzE 'data_size: 0\s+bss_size: 272\b'"
check "the ifunc patch has a bss of its own besides" \
	bash -c "'$HPATCH' inspect --trust '$T/trust' '$T/ifunc.hpatch' |
		grep -qzE 'data_size: 0\s+bss_size: (27[3-9]|2[89][0-9]|[3-9][0-9][0-9])\b'"

# maps PID: its mappings, through a live thread (a leader that exited
# has none of its own).
maps() { cat "/proc/$1/task/$(newest_tid "$1")/maps"; }
# new_maps PID BEFORE: the mappings PID has now that BEFORE had not.
new_maps() { maps "$1" | grep -vxFf "$2" || true; }
anon() { grep -E "^[0-9a-f]+-[0-9a-f]+ $1 00000000 00:00 0 *$"; }
# calls NR: how many injected system calls NR the last command ran.
calls() { grep -c "syscall $1 -> " "$T/last.err" || true; }

# 1. C, no unwinder, only the object: mmap alone, all read+execute.
start_target "$HP_TD/svc-v1" "$T/svc.log" 0
pid=$TARGET_PID
check "no libgcc_s in the target" bash -c "! grep -q libgcc_s /proc/$pid/maps"
maps "$pid" >"$T/maps.0"
expect_exit 0 "apply (no unwinder)" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/svc.hpatch"
check "one mmap run in the target" test "$(calls 9)" -eq 1
check "no mprotect" test "$(calls 10)" -eq 0
new_maps "$pid" "$T/maps.0" >"$T/maps.1"
check "the region: one read+execute mapping" test "$(anon r-xp <"$T/maps.1" | wc -l)" -eq 1
check "nothing new is writable" bash -c "! grep -qE '^[0-9a-f-]+ .w' '$T/maps.1'"
open_conn 3 "$TARGET_PORT"
check "v2" test "$(ask 3 version)" = v2
check "no EINTR" test "$(ask 3 eintr)" = 0
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 version)" = v1
check "nothing active" no_patch "$pid"
exec 3>&-

# 2. The same patch, libgcc_s loaded (glibc loads it for pthread_exit):
# the object is written, so read+write, and the table registered.
start_target "$HP_TD/svc-v1" "$T/svc2.log" 1 main-exits
pid=$TARGET_PID
# (Loaded, not only mapped, once the main thread is gone: an apply while
# ld.so relocates it is refused as busy, unwind_loading.sh.)
leader_gone() { grep -q '^State:.*Z' "/proc/$pid/status"; }
check "the main thread is gone" wait_until 5 leader_gone
check "libgcc_s loaded in the target" bash -c "grep -q libgcc_s /proc/$pid/task/*/maps"
maps "$pid" >"$T/maps.0"
expect_exit 0 "apply (an unwinder)" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/svc.hpatch"
check "mmap and mprotect run in the target" \
	test "$(calls 9)-$(calls 10)" = "1-1"
check "the unwind table is registered" grep -q "unwind table 0x[0-9a-f]* registered" "$T/last.err"
new_maps "$pid" "$T/maps.0" >"$T/maps.1"
check "the region's data part is read+write" test "$(anon rw-p <"$T/maps.1" | wc -l)" -eq 1
check "nothing is writable and executable" bash -c "! grep -qE '^[0-9a-f-]+ .wx' '$T/maps.1'"
open_conn 3 "$TARGET_PORT"
check "v2" test "$(ask 3 version)" = v2
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 again" test "$(ask 3 version)" = v1
exec 3>&-

# 3. A patch with a static buffer of its own, no unwinder: read+write.
start_target "$HP_TD/ifunc-v1" "$T/ifunc.log"
pid=$TARGET_PID
check "ifunc v1 runs" wait_result "$T/ifunc.log" 1 "result 1 KEY"
check "no libgcc_s in it" bash -c "! grep -q libgcc_s /proc/$pid/maps"
maps "$pid" >"$T/maps.0"
expect_exit 0 "apply (its own bss)" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --debug=ptrace "$T/ifunc.hpatch"
check "mmap and mprotect run in it" test "$(calls 9)-$(calls 10)" = "1-1"
new_maps "$pid" "$T/maps.0" >"$T/maps.1"
check "its data part is read+write" test "$(anon rw-p <"$T/maps.1" | wc -l)" -eq 1
check "v2 runs, writing its buffer" kill -0 "$pid"
check "... and answers as v2" wait_result "$T/ifunc.log" 2 "result 2 value;rest"
finish
