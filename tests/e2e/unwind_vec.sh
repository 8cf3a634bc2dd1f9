#!/usr/bin/env bash
# hpatch's call of the unwinder runs the target's code in one of its
# threads, stopped in a system call, which keeps every vector register
# for it (code with inlined system calls relies on that): the call's code
# may change them (libgcc's, free()'s: with malloc's perturb byte set,
# free() memsets the sorted table, through ymm16 on an AVX-512 CPU and
# vzeroupper on an AVX2 one), and the thread must get its own back. The
# sleeper here is the only thread fit for the call (main keeps a word
# into libgcc_s on its stack) and holds values in ymm15, zmm16, zmm31 and
# k1 across its own system call: it says "vec lost" if one changed.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch unwind_lock "$T/p.hpatch" --key "$T/k.key" --id vec-$$
log=$T/v.log
start_target /usr/bin/env "$log" GLIBC_TUNABLES=glibc.malloc.perturb=165 \
	"$HP_TD/unwind_lock-v1" "$T/none.fifo" vec
pid=$TARGET_PID
check "rounds" wait_round_in "$log" 'sum='
check "the sleeper holds its vector values" grep -q '^vec tid=' "$log"
v1=$(grep '^round ' "$log" | tail -n 1 | sed -n 's/.* sum=\([0-9]*\).*/\1/p')
expect_exit 0 "apply: its table registered through the sleeper" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "patched, a backtrace since (the table sorted)" \
	wait_round_in "$log" "sum=$((v1 + 200 * 4096))"
expect_exit 0 "revert: deregistered, the sorted table freed" \
	"$HPATCH" revert -p "$pid"
check "old code again" wait_round_in "$log" "sum=$v1"
check "the sleeper's vector registers its own" \
	bash -c "sleep 0.3; ! grep -q '^vec lost' '$log'"
unharmed "$pid"
finish
