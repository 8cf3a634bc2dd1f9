#!/usr/bin/env bash
# Issue 14, case 9: a process can plant fake patch records in its own
# memory. hpatch must bound what it reads from a target, print nothing raw
# from it (no escape sequences), and never let a record decide that a
# patch is applied without checking the jump bytes themselves.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p --sequence 3

# 100 forged regions, each as large as the format allows, every name an
# escape sequence, nothing redirected.
start_target "$HP_TD/hostile" "$T/forger.log" forge 100
forger=$TARGET_PID
rc=0
(ulimit -v 262144; "$HPATCH" status -p "$forger" >"$T/status.txt" 2>"$T/status.err") || rc=$?
check "status of a forger fits in 256 MB of address space (exit $rc)" test "$rc" -eq 0
check "prints no escape character" bash -c "! grep -q \$'\\033' '$T/status.txt' '$T/status.err'"
check "and no forged patch as active" bash -c "! grep -q 'active' '$T/status.txt'"
rc=0
(ulimit -v 262144; "$HPATCH" status --json >"$T/all.json" 2>"$T/all.err") || rc=$?
check "status of every process too (exit $rc)" test "$rc" -eq 0
check "... without escape characters" bash -c "! grep -q \$'\\033' '$T/all.json' '$T/all.err'"

# A real patch whose records are forged to read "in place" after its
# jumps were taken out behind hpatch's back: not "already applied".
start_target "$HP_TD/svc-v1" "$T/svc.log" 1
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
region=$("$HPATCH" status -p "$pid" --json | sed -n 's/.*"region":"\(0x[0-9a-f]*\)".*/\1/p' | head -1)
check "found the region ($region)" test -n "$region"
mem() { dd if="/proc/$pid/mem" bs=1 skip="$1" count="$2" 2>/dev/null; }
poke() { dd if="$1" of="/proc/$pid/mem" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
nr=$(mem $((region + 100)) 4 | od -An -tu4 | tr -d ' ') # hdr.nr_funcs
for i in $(seq 0 $((nr - 1))); do
	rec=$((region + 304 + 96 * i)) # struct hp_rt_func
	old=$(mem "$rec" 8 | od -An -tu8 | tr -d ' ')
	[ "$old" -ne 0 ] || continue
	mem $((rec + 24)) 5 >"$T/orig" # the bytes the jump displaced
	poke "$T/orig" "$old"
	poke "$T/orig" $((rec + 32)) # the record's "jump": what is there now
done
check "old code runs again" test "$(ask 3 version)" = v1
expect_exit 0 "apply again: not taken for applied" \
	"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
check "every function is v2: price" test "$(ask 3 'price 10')" = 95
check "every function is v2: version" test "$(ask 3 version)" = v2
expect_exit 3 "and now it is applied" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/p.hpatch"
expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1" test "$(ask 3 version)" = v1
check "the forger still runs" kill -0 "$forger"
exec 3>&-
finish
