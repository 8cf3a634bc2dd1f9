#!/usr/bin/env bash
# bench/loaded.sh prints a line for apply and one for revert, each with
# its rounds' pauses, and leaves neither its service nor its busy loops
# running.
. "$(dirname "$0")/lib.bash"
require_ptrace

# In a process group of its own, to find what it leaves.
HP_BUILD_DIR=$HP_BUILD HP_BENCH_ROUNDS=3 HP_BENCH_BUSY=1 setsid --wait \
	bash -c 'echo $$ >"$1"; exec bash "$2"' - "$T/pgid" \
	"$HP_SRC/bench/loaded.sh" >"$T/out" 2>"$T/err" && rc=0 || rc=$?
check "it ends well (exit $rc)" test "$rc" -eq 0
for w in apply revert; do
	check "a line for $w, 3 rounds" grep -qE \
		"^loaded: $w threads=[1-9][0-9]* busy=1 n=3 p50_us=[1-9][0-9]* p90_us=[1-9][0-9]* max_us=[1-9]" "$T/out"
done
check "nothing of it left running (service, busy loops)" \
	wait_until 5 bash -c "! pgrep -g $(cat "$T/pgid") >/dev/null"
check "nothing said on stderr" test ! -s "$T/err"
finish
