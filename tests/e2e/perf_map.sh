#!/usr/bin/env bash
# perf's map (/tmp/perf-PID.map, runtime/rt_perfmap.c) is written by root
# into a world-writable directory: a link planted there is never followed,
# a file of another user never written; the apply itself goes on. With
# nothing planted, the map gets a line per patched function.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
# A map left by an earlier process of the same pid (not every test's
# targets are cleaned up after) is not this one's.
fresh() { rm -f "/tmp/perf-$1.map"; }
plant() { # plant PID: a link where the map of PID goes, to a victim file
	printf 'victim\n' >"$T/victim"
	fresh "$1"
	ln -s "$T/victim" "/tmp/perf-$1.map"
}

start_target "$HP_TD/svc-v1" "$T/a.log" 1
a=$TARGET_PID
plant "$a"
expect_exit 0 "apply with a planted link" "$HPATCH" apply -p "$a" --trust "$T/trust" "$T/svc.hpatch"
check "the link was not followed" test "$(cat "$T/victim")" = victim
check "warned that the map was not written" grep -q "perf map not written" "$T/last.err"
check "the link is still a link" test -L "/tmp/perf-$a.map"

start_target "$HP_TD/svc-v1" "$T/b.log" 1
b=$TARGET_PID
fresh "$b"
printf 'theirs\n' >"/tmp/perf-$b.map"
chown nobody "/tmp/perf-$b.map"
expect_exit 0 "apply with another user's file there" "$HPATCH" apply -p "$b" --trust "$T/trust" "$T/svc.hpatch"
check "another user's file not written" test "$(cat "/tmp/perf-$b.map")" = theirs

start_target "$HP_TD/svc-v1" "$T/c.log" 1
c=$TARGET_PID
fresh "$c"
expect_exit 0 "apply" "$HPATCH" apply -p "$c" --trust "$T/trust" "$T/svc.hpatch"
nr=$(sed -n 's/^ *functions: \([0-9]*\)$/\1/p' "$T/last.out")
check "a map line per patched function ($nr)" \
	test "$(grep -c ' \[hpatch:svc\]$' "/tmp/perf-$c.map")" = "$nr"
check "the map is a regular file" \
	test -f "/tmp/perf-$c.map" -a ! -L "/tmp/perf-$c.map"
expect_exit 0 "revert" "$HPATCH" revert -p "$c"
check "lines stay after revert (perf reads them at report time)" \
	grep -q ' \[hpatch:svc\]$' "/tmp/perf-$c.map"
finish
