#!/usr/bin/env bash
# A thread hpatch left attached inside its injected call (past its
# bound), back before hpatch exits, gets its registers and signal mask
# back, as hpatch says it does: as hpatch exits, where the kernel used to
# let it go with hpatch's registers, every signal blocked and its step's
# trap (the target died). HPATCH_FAULT=call-left leaves it so at the
# first call (the region's mmap), already back. (The mmap's result is
# lost with it: its zero pages stay mapped.)
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
HPATCH_FAULT=call-left expect_exit 4 "left inside its call: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "names the thread, inside hpatch's call" \
	grep -q "tid $pid: still inside hpatch's injected system call" "$T/last.err"
check "let go as hpatch exited, back from the call" \
	grep -q "tid $pid: stopped at last" "$T/last.err"
sleep 0.3
unharmed "$pid"
check "old code, answering as before" test "$(ask 3 version)" = v1
expect_exit 0 "then applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "v2" test "$(ask 3 version)" = v2
exec 3>&-

# So in the worker processes of a run over several (--jobs): each lets
# its own go as it exits.
start_target "$HP_TD/svc-v1" "$T/b.log" 1
b=$TARGET_PID
start_target "$HP_TD/svc-v1" "$T/c.log" 1
c=$TARGET_PID
HPATCH_FAULT=call-left expect_exit 4 "--jobs 2: left inside their calls: busy" \
	"$HPATCH" apply -p "$b" -p "$c" --jobs 2 --trust "$T/trust" "$T/p.hpatch"
# (Each worker's first call: one worker may take both processes.)
check "--jobs 2: left" grep -q "still inside hpatch's injected system call" "$T/last.err"
sleep 0.3
unharmed "$b"
unharmed "$c"

# So when a signal that ends hpatch (held while it holds the target)
# acts after the attempt: it came in the delay before the mapping
# (HPATCH_DELAY=mmap), and the thread is left at the mmap. It acted
# before hpatch's exit let the thread go, and the kernel let it go with
# hpatch's registers, its mask and its step's trap (the target died).
for sig in TERM HUP; do
	start_target "$HP_TD/svc-v1" "$T/$sig.log" 1
	d=$TARGET_PID
	HPATCH_FAULT=call-left HPATCH_DELAY=mmap:800 "$HPATCH" apply -p "$d" \
		--trust "$T/trust" "$T/p.hpatch" >"$T/$sig.out" 2>"$T/$sig.err" &
	hp=$!
	wait_until 10 grep -qs "test delay" "$T/$sig.err"
	kill -"$sig" "$hp"
	wait "$hp" && rc=0 || rc=$?
	check "SIG$sig: ended hpatch (exit $rc)" \
		test "$rc" = $((128 + $(kill -l "$sig")))
	check "SIG$sig: ... once the attempt was over" \
		grep -q "still inside hpatch's injected system call" "$T/$sig.err"
	check "SIG$sig: the thread let go first, back from the call" \
		grep -q "tid $d: stopped at last" "$T/$sig.err"
	sleep 0.3
	unharmed "$d"
done
finish
