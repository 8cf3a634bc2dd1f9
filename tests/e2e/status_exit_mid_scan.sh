#!/usr/bin/env bash
# hpatch status over every process names those whose patches it cannot
# tell (exit 1). A patched process that exits while status reads its
# patch records (a short-lived worker hpatchd patched at its exec) has no
# patch left: it is gone, as one gone before the scan, never "unknown",
# and the answer is whole (exit 0). Run in a pid namespace of the test's
# own, whose /proc lists its processes alone.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/p.hpatch" --key "$T/k.key" --id p
unshare -p -m --mount-proc --propagation private --kill-child sleep 600 &
PIDS+=($!)
u=$!
init_of() { init=$(tr -d ' ' <"/proc/$u/task/$u/children") && [ -n "$init" ]; }
check "a pid namespace" wait_until 5 init_of
in_ns() { nsenter -t "$init" -p -m -- "$@"; }

# A patched process of the namespace's.
in_ns "$HP_TD/svc-v1" 1 >"$T/a.log" 2>&1 &
check "a target in it" wait_until 10 grep -q ready "$T/a.log"
a=$(sed -n 's/.*ready pid=\([0-9]*\).*/\1/p' "$T/a.log")
expect_exit 0 "apply -p $a (its pid in the namespace)" \
	in_ns "$HPATCH" apply -p "$a" --trust "$T/trust" "$T/p.hpatch"
expect_exit 0 "status: pid $a's patch" in_ns "$HPATCH" status --json
check "status lists pid $a's patch" \
	grep -q "{\"pid\":$a,\"patches\":\[{\"patch_id\":\"p\"" "$T/last.out"
check "and nothing unknown" grep -q '"unknown":\[\]' "$T/last.out"

# Killed between the read of its region's header and that of its records.
HPATCH_DELAY=region:1500 in_ns "$HPATCH" status --json \
	>"$T/status.out" 2>"$T/status.err" &
status=$!
check "status reads pid $a's region" \
	wait_until 10 grep -q "test delay: .* at step 'region'" "$T/status.err"
in_ns kill -9 "$a"
rc=0
wait "$status" || rc=$?
check "status over every process: exit 0 (exit $rc: $(grep -v 'test delay' "$T/status.err" | head -c 300))" \
	test "$rc" -eq 0
check "pid $a not unknown, nothing is" grep -q '"unknown":\[\]' "$T/status.out"
gone_in_ns() { ! in_ns kill -0 "$1" 2>/dev/null; }
check "pid $a gone" gone_in_ns "$a"
# Its perf map, named by its pid in the namespace (the one perf looks
# for there), which the cleanup's host pids do not name.
rm -f "/tmp/perf-$a.map"
finish
