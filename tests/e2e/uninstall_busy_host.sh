#!/usr/bin/env bash
# hpatch uninstall on a host that starts processes all the time (a build
# server, cron, a shell loop): it lists the host's processes again only
# while the last list's new ones had the patch (only those can have
# forked one that has it), not until a list shows none new, which such a
# host never gives: it reverts, drops the mark and exits 0.
. "$(dirname "$0")/lib.bash"
require_ptrace

store_svc busyhost
start_target "$HP_TD/svc-v1" "$T/a.log" 1
a=$TARGET_PID
expect_exit 0 "apply to pid $a" "$HPATCH" apply -p "$a" --trust "$T/trust" "$S/$id.hpatch"
busy_host_start
rc=0
"$HPATCH" uninstall --store "$S" --trust "$T/trust" "$id" >"$T/un.out" 2>"$T/un.err" || rc=$?
busy_host_stop
check "uninstall while processes keep starting: exit 0 ($rc: $(tail -n 1 "$T/un.err"))" test "$rc" -eq 0
check "pid $a reverted" lacks_patch "$a" "$id"
check "the mark goes" test ! -e "$S/$id.uninstalled"
finish
