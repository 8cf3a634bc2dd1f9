#!/usr/bin/env bash
# A patched function interrupted by a signal whose handler runs on an
# alternate stack (sigaltstack): its frames are on the usual stack, below
# the signal frame, and count as they do on the stack a thread runs on.
# apply is busy while the old work() waits below the handler; revert is
# busy while the patch's work() does, and with --allow-active keeps the
# patch's code, which no later hpatch unmaps until the handler returned
# and work() left it. (Unseen, the code was unmapped under the thread,
# which died of SIGSEGV on return from the handler.)
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch altstack "$T/altstack.hpatch" --key "$T/k.key"
mkfifo "$T/in"
"$HP_TD/altstack-v1" <"$T/in" >"$T/log" 2>&1 &
pid=$!
PIDS+=("$pid")
exec 5>"$T/in"
# wait_line TEXT N: until the target printed line TEXT N times.
wait_line() {
	for _ in $(seq 250); do
		[ "$(grep -cx "$1" "$T/log")" -ge "$2" ] && return 0
		sleep 0.02
	done
	echo "no '$1' x$2 in: $(cat "$T/log")" >&2
	return 1
}
wait_line "altstack: ready pid=$pid" 1
alive() { kill -0 "$pid" 2>/dev/null; }

# The old work() below the handler: apply is busy, and goes ahead once
# the handler returned and work() did.
echo work >&5
wait_line "work v1" 1
kill -USR1 "$pid"
wait_line "handler in" 1
expect_exit 4 "apply while work() waits below a handler on its altstack: busy" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" --timeout 300 "$T/altstack.hpatch"
check "... naming work" grep -q "'work' still in use" "$T/last.err"
echo release >&5
wait_line "handler out" 1
echo stop >&5
check "that call finished in v1" wait_line "work done v1" 1
expect_exit 0 "work() returned: apply" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/altstack.hpatch"
"$HPATCH" status -p "$pid" --json >"$T/status.json"
region=$(sed -n 's/.*"region":"0x\([0-9a-f]*\)".*/\1/p' "$T/status.json")
check "the patch is mapped" grep -q "^$region-" "/proc/$pid/maps"

# The patch's work() below the handler: revert is busy, the code stays.
echo work >&5
wait_line "work v2" 1
kill -USR1 "$pid"
wait_line "handler in" 2
expect_exit 4 "revert while the patch's work() waits below a handler: busy" \
	"$HPATCH" revert -p "$pid" --timeout 300
check "... naming work" grep -q "'work' still in use" "$T/last.err"
check "the target lives" alive
check "the patch is still mapped" grep -q "^$region-" "/proc/$pid/maps"

# --allow-active: reverted, the code kept retired; a later hpatch does
# not unmap it while the interrupted work() returns into it.
expect_exit 0 "revert --allow-active" "$HPATCH" revert -p "$pid" --allow-active
"$HPATCH" status -p "$pid" --json >"$T/status.json"
check "status: the patch is retired" grep -q '"state":"retired"' "$T/status.json"
expect_exit 3 "a later hpatch: nothing to revert" "$HPATCH" revert -p "$pid"
check "... and it kept the retired code" grep -q "^$region-" "/proc/$pid/maps"
check "the target lives" alive
echo release >&5
wait_line "handler out" 2
echo stop >&5
check "the interrupted call finished in the patch's code" wait_line "work done v2" 1
check "the target lives after the handler returned" alive
expect_exit 3 "then a later hpatch: nothing to revert" "$HPATCH" revert -p "$pid"
check "... and it unmapped the unused code" \
	bash -c "! grep -q '^$region-' /proc/$pid/maps"
echo work >&5
check "new calls run v1" wait_line "work v1" 2
echo stop >&5
check "... and return" wait_line "work done v1" 2
check "the target lives at the end" alive
exec 5>&-
finish
