#!/usr/bin/env bash
# A thread fit for the unwinder call has no return address into the
# allocator's locking functions on its stack (docs/UNWIND.md); a pointer
# to one's entry is no return address (a call returns past it), but a
# function pointer: pthread_cleanup_push(free, p) at -O0, a C++
# unique_ptr with free as its deleter. Here the only thread waiting in a
# system call (main keeps a word pointing into libgcc_s) keeps one to
# free as it sleeps: the patch and its revert go through it.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch unwind_lock "$T/p.hpatch" --key "$T/k.key" --id p
log=$T/fnptr.log
start_target "$HP_TD/unwind_lock-v1" "$log" "$T/none.fifo" fnptr
pid=$TARGET_PID
check "rounds" wait_round_in "$log" 'sum='
check "the sleeper keeps a pointer to free" grep -q '^fnptr 0x' "$log"
rx=$(code_maps "$pid")
v1=$(grep '^round ' "$log" | tail -n 1 | sed -n 's/.* sum=\([0-9]*\).*/\1/p')
expect_exit 0 "apply through the sleeper" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "patched, unwinding" wait_round_in "$log" "sum=$((v1 + 200 * 4096))"
expect_exit 0 "revert through it" "$HPATCH" revert -p "$pid"
check "old code, unwinding" wait_round_in "$log" "sum=$v1"
as_before() { test "$(code_maps "$pid")" -eq "$rx"; }
check "the region unmapped" collected "$pid" as_before
unharmed "$pid"
finish
