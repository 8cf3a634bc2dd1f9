#!/usr/bin/env bash
# Thread-locals in an executable: the patched code keeps counting in each
# running thread's own __thread variable (local-exec) and reads another
# file's thread-local (initial-exec): values continue, step 1 -> 2.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch tls "$T/t.hpatch" --key "$T/k.key"
start_target "$HP_TD/tls-v1" "$T/tls.log"
pid=$TARGET_PID
sleep 0.3
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/t.hpatch"
mark=$(wc -l <"$T/tls.log")
sleep 0.4
for th in 0 1; do
	# values of this thread: before the mark, and after it
	before=$(head -n "$mark" "$T/tls.log" | awk -v t="$th" '$1 == "tls" && $2 == t {v = $3} END {print v}')
	after=$(tail -n +"$((mark + 1))" "$T/tls.log" | awk -v t="$th" '$1 == "tls" && $2 == t {print $3}' | head -4)
	first=$(echo "$after" | head -1)
	steps=$(echo "$after" | awk 'NR > 1 {print $1 - p} {p = $1}' | sort -u | tr '\n' ' ')
	check "thread $th: counter continued ($before -> $first)" test "$first" -gt "$before"
	check "thread $th: counter in its own TLS, near the old value" test $((first - before)) -le 10
	check "thread $th: now steps by 2 ($steps)" test "$steps" = "2 "
	check "thread $th: initial-exec thread-local read (>= 1000)" test "$first" -gt 1000
done
expect_exit 0 "revert" "$HPATCH" revert -p "$pid" --allow-active
finish
