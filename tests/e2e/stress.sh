#!/usr/bin/env bash
# 64 threads call the patched functions and check every result while the
# patch is applied and reverted 1000 times (HP_STRESS_ROUNDS): no crash,
# no wrong result, both versions and mixed calls actually observed. Then
# the same with 512 threads, the most a target is promised, for fewer
# rounds (HP_STRESS_ROUNDS_512, default 20).
. "$(dirname "$0")/lib.bash"
require_ptrace

rounds=${HP_STRESS_ROUNDS:-1000}
build_patch stress "$T/s.hpatch"
start_target "$HP_TD/stress-v1" "$T/stress.log" 64
pid=$TARGET_PID
start=$(date +%s)
expect_exit 0 "$rounds apply/revert rounds under 64 checking threads" \
	"$HP_BUILD/tests/hp_stress" "$pid" "$T/s.hpatch" "$rounds"
cat "$T/last.out"
echo "took $(($(date +%s) - start)) s"
check "target still running" kill -0 "$pid"
sleep 0.5
check "no wrong result" bash -c "! grep -q WRONG '$T/stress.log'"
last=$(grep stats "$T/stress.log" | tail -1)
echo "$last"
v1=$(echo "$last" | sed -n 's/.*v1=\([0-9]*\).*/\1/p')
v2=$(echo "$last" | sed -n 's/.*v2=\([0-9]*\).*/\1/p')
check "v1 results seen" test "$v1" -gt 0
check "v2 results seen" test "$v2" -gt 0
kill -9 "$pid"

rounds=${HP_STRESS_ROUNDS_512:-20}
start_target "$HP_TD/stress-v1" "$T/stress512.log" 512
pid=$TARGET_PID
expect_exit 0 "$rounds apply/revert rounds under 512 checking threads" \
	"$HP_BUILD/tests/hp_stress" "$pid" "$T/s.hpatch" "$rounds"
# Wait for a stats line counting every round (builtins only: under 512
# spinning threads each command takes seconds to start), then stop it
# before checking.
mapfile -t seen <"$T/stress512.log"
for ((i = 0; i < 100; i++)); do
	mapfile -t now <"$T/stress512.log"
	[ "${#now[@]}" -gt "${#seen[@]}" ] && break
	read -r -t 0.1 <> <(:) || true
done
kill -STOP "$pid"
cat "$T/last.out"
check "512: target still alive" test -d "/proc/$pid"
check "512: all threads there" test "$(nr_tasks "$pid")" -ge 512
check "512: no wrong result" bash -c "! grep -q WRONG '$T/stress512.log'"
last=$(grep stats "$T/stress512.log" | tail -1)
echo "$last"
check "512: v2 results seen" \
	test "$(echo "$last" | sed -n 's/.*v2=\([0-9]*\).*/\1/p')" -gt 0
kill -9 "$pid"
finish
