#!/usr/bin/env bash
# hpatch uninstall at its limit of open files cannot read a process's
# memory: that tells nothing of the patch there. The process is said not
# reverted (exit 1), and the mark stays for hpatchd or the next
# uninstall, which reverts it.
. "$(dirname "$0")/lib.bash"
require_ptrace

store_svc unfd
start_target "$HP_TD/svc-v1" "$T/a.log" 1
a=$TARGET_PID
expect_exit 0 "apply to pid $a" "$HPATCH" apply -p "$a" --trust "$T/trust" "$S/$id.hpatch"
# The fewest open files with which it gets past removing the patch (and
# marking it): then a process's memory and map, open at once, are not.
cp -r "$S" "$T/saved"
for n in $(seq 4 32); do
	rm -rf "$S" && cp -r "$T/saved" "$S"
	rc=0
	prlimit --nofile="$n:$n" "$HPATCH" uninstall --store "$S" \
		--trust "$T/trust" "$id" >"$T/un.out" 2>"$T/un.err" || rc=$?
	[ -e "$S/$id.hpatch" ] || break
done
echo "with $n files: exit $rc"
check "pid $a not read: not reverted, exit 1 ($rc)" test "$rc" -eq 1
check "... said so" grep -q "pid: $a" "$T/un.out"
check "... it still has the patch" has_patch "$a" "$id"
check "the mark stays" test -e "$S/$id.uninstalled"
expect_exit 0 "uninstall again, with files: reverted" \
	"$HPATCH" uninstall --store "$S" --trust "$T/trust" "$id"
check "pid $a reverted" lacks_patch "$a" "$id"
check "the mark goes" test ! -e "$S/$id.uninstalled"
finish
