#!/usr/bin/env bash
# Threads born and dying during the stop: apply and revert still work and
# every result stays right. A target that exits while hpatch works on it:
# hpatch says so (the pid is gone), exits 1, and does not hang or crash.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch churn "$T/c.hpatch" --key "$T/k.key"
start_target "$HP_BUILD/testdata/churn-v1" "$T/churn.log" 4
pid=$TARGET_PID
for i in 1 2 3 4 5; do
	expect_exit 0 "apply #$i amid thread churn" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/c.hpatch"
	expect_exit 0 "revert #$i amid thread churn" \
		"$HPATCH" revert -p "$pid" --allow-active
done
expect_exit 0 "apply again" "$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/c.hpatch"
sleep 0.5
check "target alive" kill -0 "$pid"
check "no wrong result" bash -c "! grep -q WRONG '$T/churn.log'"
last=$(grep stats "$T/churn.log" | tail -1)
echo "$last"
check "new threads run v2" test "$(echo "$last" | sed -n 's/.*v2=\([0-9]*\).*/\1/p')" -gt 0

# Exit mid-apply: kill the target while hpatch holds it (a busy function
# keeps hpatch retrying), then hpatch must report and stop.
start_target "$HP_BUILD/testdata/svc-v1" "$T/svc.log" 1
pid2=$TARGET_PID
build_patch svc "$T/s.hpatch" --key "$T/k.key"
open_conn 3 "$TARGET_PORT"
echo "hold 5000" >&3
sleep 0.2
"$HPATCH" apply -p "$pid2" --trust "$T/trust" --timeout 4000 "$T/s.hpatch" \
	>"$T/gone.out" 2>"$T/gone.err" &
hp=$!
sleep 0.5
kill -9 "$pid2"
rc=0
wait "$hp" || rc=$?
check "hpatch exits 1 when the target dies (exit $rc)" test "$rc" -eq 1
check "and says the process is gone" grep -qiE "exited|no such process|gone" "$T/gone.err"
exec 3>&-
finish
