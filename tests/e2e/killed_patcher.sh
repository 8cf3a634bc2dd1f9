#!/usr/bin/env bash
# Issue 14, case 4: hpatch itself is killed (SIGTERM from a supervisor,
# SIGHUP when the ssh session drops, SIGINT from ^C) while it holds a
# target. The target must end fully old or fully patched, running, with
# nothing left mapped that it did not have, and the attempt recorded;
# the OOM killer must not pick hpatch while it holds a process.
. "$(dirname "$0")/lib.bash"
require_ptrace

svc_and_patch
regions() { "$HPATCH" status -p "$pid" --json | grep -o '"state":"[a-z ]*"' | grep -v retired | sort | uniq -c | tr -s ' ' | tr '\n' ';'; }
# (Some containers forbid lowering oom_score_adj even to root.)
oom_ok=$(bash -c 'echo -1 >/proc/self/oom_score_adj' 2>/dev/null && echo yes || echo no)
oom_proof() { test "$(cat "/proc/$1/oom_score_adj" 2>/dev/null)" = -1000; }

for sig in TERM HUP INT; do
	# Every thread stopped for 800 ms (HPATCH_DELAY at the stop): the
	# signal arrives in the middle of the window.
	HPATCH_DELAY=stop:800 "$HPATCH" apply -p "$pid" --trust "$T/trust" \
		"$T/p.hpatch" >"$T/hp.out" 2>"$T/hp.err" &
	hp=$!
	sleep 0.4
	[ "$oom_ok" = no ] ||
		check "SIG$sig: hpatch is OOM-proof while it holds the target" \
			wait_until 5 oom_proof "$hp"
	kill -"$sig" "$hp"
	wait "$hp" && rc=0 || rc=$?
	check "SIG$sig: the target runs" kill -0 "$pid"
	v=$(ask 3 version)
	check "SIG$sig: fully patched or fully old ($v)" test "$v" = v2 -o "$v" = v1
	if [ "$v" = v2 ]; then
		check "SIG$sig: one active patch, nothing else left mapped ($(regions))" \
			test "$(regions)" = " 1 \"state\":\"active\";"
		check "SIG$sig: the apply is in the audit log" \
			grep -q "\"pid\":$pid,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG"
		expect_exit 0 "SIG$sig: revert" "$HPATCH" revert -p "$pid"
	else
		check "SIG$sig: no region left mapped ($(regions))" test -z "$(regions)"
	fi
	# (A background job of a script ignores SIGINT from birth.)
	check "SIG$sig: hpatch ended by it after finishing (exit $rc)" \
		test "$rc" -eq $((128 + $(kill -l "$sig"))) -o "$sig$rc" = INT0
	: >"$HPATCH_AUDIT_LOG"
done
check "v1 at the end" test "$(ask 3 version)" = v1

# hpatch uninstall reverts the patch in every process: a signal in one's
# stop acts once that process is reverted and recorded, as for revert.
# (An id of its own: uninstall reverts a patch of that id everywhere.)
build_patch svc "$T/un.hpatch" --key "$T/k.key" --id "un-$$"
expect_exit 0 "applied again" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/un.hpatch"
"$HPATCH" install --store "$T/store" --trust "$T/trust" "$T/un.hpatch" >/dev/null
: >"$HPATCH_AUDIT_LOG"
HPATCH_DELAY=stop:800 "$HPATCH" uninstall --store "$T/store" "un-$$" \
	>"$T/un.out" 2>"$T/un.err" &
hp=$!
sleep 0.4
kill -TERM "$hp"
wait "$hp" && rc=0 || rc=$?
check "uninstall, SIGTERM in the stop: it ends by it after (exit $rc)" \
	test "$rc" -eq 143
check "uninstall, SIGTERM in the stop: reverted, v1" test "$(ask 3 version)" = v1
check "uninstall, SIGTERM in the stop: the revert recorded" \
	grep -q "\"action\":\"revert\",\"pid\":$pid,.*\"result\":\"ok\"" "$HPATCH_AUDIT_LOG"
exec 3>&-
finish
