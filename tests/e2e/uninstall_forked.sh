#!/usr/bin/env bash
# hpatch uninstall reverts the patch in every process that has it, those
# forked while it runs too: a worker a server forks after the list of
# processes was read, from a parent not reverted yet, has the patch in
# its copy of the memory. It is reverted, and then only is the mark gone.
. "$(dirname "$0")/lib.bash"
require_ptrace

store_svc forked
# a: busy in the patch (hold() spins) for a while; its revert waits.
start_target "$HP_TD/svc-v1" "$T/a.log" 1
a=$TARGET_PID
open_conn 3 "$TARGET_PORT"
# s: a server (busy too) that forks a worker while the uninstall waits for a.
start_target "$HP_TD/svc-v1" "$T/s.log" 1
s=$TARGET_PID
open_conn 4 "$TARGET_PORT"
open_conn 5 "$TARGET_PORT"
for p in "$a" "$s"; do
	expect_exit 0 "apply to pid $p" \
		"$HPATCH" apply -p "$p" --trust "$T/trust" "$S/$id.hpatch"
done
echo "hold -1500" >&3
echo "hold -1500" >&5 # s busy too: not reverted when it forks, whatever the order
sleep 0.1
"$HPATCH" uninstall --store "$S" --trust "$T/trust" --timeout 5000 \
	"$id" >"$T/un.out" 2>"$T/un.err" &
un=$!
sleep 0.5 # its list read; it waits for a
child=$(ask 4 "fork 20000")
PIDS+=("$child")
rc=0
wait "$un" || rc=$?
check "uninstall: exit 0 ($rc)" test "$rc" -eq 0
check "pid $a reverted" lacks_patch "$a" "$id"
check "pid $s reverted" lacks_patch "$s" "$id"
check "its worker $child, forked meanwhile, reverted too" lacks_patch "$child" "$id"
check "... said so" grep -q "pid: $child" "$T/un.out"
check "the mark goes" test ! -e "$S/$id.uninstalled"
finish
