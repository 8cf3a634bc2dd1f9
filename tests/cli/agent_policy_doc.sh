#!/usr/bin/env bash
# The policy example in docs/AGENT.md is a valid policy file, and a bad
# line in one is refused with a message naming it (hpatch check reads
# hpatchd's policy for its exclusions).
. "$(dirname "$0")/../e2e/lib.bash" # $T, check, finish
: "${HP_SRC:?HP_SRC must name the source directory}"
awk '/^```ini$/ {f = 1; next} /^```$/ {f = 0} f' "$HP_SRC/docs/AGENT.md" >"$T/doc.conf"
check "the documented example has every section" \
	test "$(grep -c '^\[\(apply\|metrics\|include\|exclude\|fallback\)\]' "$T/doc.conf")" -eq 5
rc=0
"$HP_BUILD/runtime/hpatch" check --config "$T/doc.conf" >/dev/null 2>"$T/err" || rc=$?
check "the documented example parses (exit $rc)" test "$rc" -eq 0
printf '[apply]\nretry = 1s later\n' >"$T/bad.conf"
rc=0
"$HP_BUILD/runtime/hpatch" check --config "$T/bad.conf" >/dev/null 2>"$T/err" || rc=$?
check "a bad line: exit 1" test "$rc" -eq 1
check "... named" grep -q "\[apply\] retry = 1s later: not valid" "$T/err"
finish
