#!/usr/bin/env bash
# Threads born and dying during the stop: apply and revert still work and
# every result stays right, with and without --allow-active. A target that
# exits while hpatch works on it, between tries or with every thread
# stopped: hpatch says so, exits 1, and does not hang or crash.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch churn "$T/c.hpatch" --key "$T/k.key"
start_target "$HP_TD/churn-v1" "$T/churn.log" 4
pid=$TARGET_PID
for i in 1 2 3 4 5; do
	expect_exit 0 "apply #$i amid thread churn" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" --allow-active "$T/c.hpatch"
	expect_exit 0 "revert #$i amid thread churn" \
		"$HPATCH" revert -p "$pid" --allow-active
done
# The default path too: every stack read and checked amid the churn.
for i in 1 2 3; do
	expect_exit 0 "apply #$i amid thread churn, stacks checked" \
		"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/c.hpatch"
	expect_exit 0 "revert #$i amid thread churn, stacks checked" \
		"$HPATCH" revert -p "$pid"
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
start_target "$HP_TD/svc-v1" "$T/svc.log" 1
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

# Exit inside the stop: every thread is stopped when the target is killed;
# hpatch finds it gone at the write and says so.
start_target "$HP_TD/svc-v1" "$T/svc3.log" 2
pid3=$TARGET_PID
# The fallback runs while hpatch still lives: by then hpatch must have let
# the dead threads go, so the target's parent (this shell) could reap it.
HPATCH_DELAY=stop:800 "$HPATCH" apply -p "$pid3" --trust "$T/trust" \
	--on-refuse "for i in \$(seq 100); do [ -e /proc/$pid3 ] || { echo reaped >$T/reaped; exit 0; }; sleep 0.02; done; echo still there >$T/reaped" \
	"$T/s.hpatch" >"$T/gone3.out" 2>"$T/gone3.err" &
hp=$!
for _ in $(seq 100); do
	grep -q 'TracerPid:[[:space:]]*[1-9]' "/proc/$pid3/status" 2>/dev/null && break
	sleep 0.02
done
sleep 0.3
kill -9 "$pid3"
rc=0
wait "$hp" || rc=$?
check "hpatch exits 1 when the target dies in the stop (exit $rc)" test "$rc" -eq 1
check "and says it exited during the apply" \
	grep -q "pid $pid3: the process exited during the apply; nothing to undo" "$T/gone3.err"
check "its parent could reap it while hpatch ran ($(cat "$T/reaped" 2>/dev/null))" \
	grep -qx reaped "$T/reaped"
exec 3>&-
finish
