#!/usr/bin/env bash
# Apply and revert a four-function patch on a service whose threads sit in
# nanosleep, futex waits, accept and read: a static local keeps its state
# across the patch, no thread sees EINTR, and the audit log records both.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key" --id svc-fix
start_target "$HP_TD/svc-v1" "$T/svc.log" 2
pid=$TARGET_PID
open_conn 3 "$TARGET_PORT"
check "v1 before" test "$(ask 3 version)" = v1
check "counter counts" test "$(ask 3 next)-$(ask 3 next)" = "1-2"
check "v1 price" test "$(ask 3 'price 10')" = 100

cat "/proc/$pid/maps" >"$T/maps.before"
expect_exit 0 "apply" "$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/svc.hpatch"
cat "/proc/$pid/maps" >"$T/maps.after"
grep -vxFf "$T/maps.before" "$T/maps.after" >"$T/maps.new" || true
check "the patch's code is mapped read+execute" grep -q '^[0-9a-f-]* r-xp' "$T/maps.new"
check "nothing new is writable and executable" \
	bash -c "! grep -q '^[0-9a-f-]* .wx' '$T/maps.new'"
now=$(date +%s)
"$HPATCH" status --json >"$T/status.json"
check "status (all processes) lists it, applied just now" \
	grep -qE "\"pid\":$pid,\"patches\":\[\{\"patch_id\":\"svc-fix\",.*\"applied_at\":($now|$((now - 1))|$((now - 2)))," "$T/status.json"
check "v2 after apply" test "$(ask 3 version)" = v2
check "v2 price on the same connection" test "$(ask 3 'price 10')" = 95
check "static local kept its value (3rd call in v2 form)" \
	test "$(ask 3 next)" = 1003
check "no system call saw EINTR" test "$(ask 3 eintr)" = 0
check "audit log records the apply" \
	grep -q "\"action\":\"apply\",\"pid\":$pid,.*\"patch_id\":\"svc-fix\".*\"result\":\"ok\"" "$T/audit.log"
check "audit log lists the functions" \
	grep -q '"functions":\["price","next_id","hold","version"\]' "$T/audit.log"
check "audit log has the pause" grep -q '"pause_us":[0-9]' "$T/audit.log"
key=$("$HPSIGN" keyid "$T/k.pub")
exe=$(readlink -f "$HP_TD/svc-v1")
bid=$(readelf -n "$exe" | sed -n 's/.*Build ID: //p')
check "audit apply line: time, user, executable, build-id, key, sequence" \
	grep -qE "^\{\"schema_version\":1,\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z\",\"user\":\"$(id -un)\",.*\"action\":\"apply\",\"pid\":$pid,\"executable\":\"$exe\",.*\"build_id\":\"$bid\",.*\"key_id\":\"$key\",\"sequence\":[1-9]" "$T/audit.log"

expect_exit 0 "revert" "$HPATCH" revert -p "$pid"
check "v1 after revert" test "$(ask 3 version)" = v1
check "counter continues in v1 form" test "$(ask 3 next)" = 4
check "still no EINTR" test "$(ask 3 eintr)" = 0
check "audit log records the revert" \
	grep -q "\"action\":\"revert\",\"pid\":$pid,.*\"result\":\"ok\"" "$T/audit.log"
check "audit revert line names the patch, its build-id and signer" \
	grep -q "\"action\":\"revert\",\"pid\":$pid,.*\"build_id\":\"$bid\",.*\"patch_id\":\"svc-fix\",\"key_id\":\"$key\"" "$T/audit.log"
expect_exit 3 "revert with nothing applied" "$HPATCH" revert -p "$pid"
exec 3>&-

# A process whose main thread has exited (pthread_exit) while the others
# serve: its leader is a zombie, the system calls go through a live thread.
start_target "$HP_TD/svc-v1" "$T/svc2.log" 1 main-exits
pid2=$TARGET_PID
open_conn 3 "$TARGET_PORT"
for _ in $(seq 50); do grep -q '^State:.*Z' "/proc/$pid2/status" && break; sleep 0.02; done
check "its main thread is gone" grep -q '^State:.*Z' "/proc/$pid2/status"
expect_exit 0 "apply to it" "$HPATCH" apply -p "$pid2" --trust "$T/trust" "$T/svc.hpatch"
check "v2 there" test "$(ask 3 version)-$(ask 3 'price 10')" = v2-95
expect_exit 0 "revert it" "$HPATCH" revert -p "$pid2"
check "v1 there again" test "$(ask 3 version)" = v1
check "no EINTR there" test "$(ask 3 eintr)" = 0
exec 3>&-
finish
