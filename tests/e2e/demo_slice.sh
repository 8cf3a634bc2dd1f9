#!/usr/bin/env bash
# The foundation slice, end to end: a running multi-threaded TCP service
# (demo v1) is patched live into v2 from a signed .hpatch built by hpdiff,
# keeps its pid, threads and an open connection, and is reverted.
. "$(dirname "$0")/lib.bash"
require_ptrace

OBJS=$HP_TD/CMakeFiles
make_key release

# hpdiff finds exactly the one changed function.
"$HPDIFF" --old "$OBJS/demo-v1.objs.dir" --new "$OBJS/demo-v2.objs.dir" \
	--binary "$HP_TD/demo-v1" --key "$T/release.key" \
	-o "$T/fix.hpatch" --json >"$T/report.json"
check "hpdiff exits 0" true
check "report lists format_quote as changed" \
	grep -q '"name":"format_quote","module":"demo-v1","object":"targets/demo/demo_quote.c.o","change":"changed"' "$T/report.json"
check "report lists only one function" \
	test "$(grep -o '"name":' "$T/report.json" | wc -l)" -eq 1
check "report refuses nothing" grep -q '"refused":\[\]' "$T/report.json"
check "patch file written" test -s "$T/fix.hpatch"

start_target "$HP_TD/demo-v1" "$T/demo.log" 0 4
pid=$TARGET_PID
exec 3<>"/dev/tcp/127.0.0.1/$TARGET_PORT"
check "v1 answers before the patch" \
	test "$(ask 3 3)" = "quote for 3: 30 EUR (v1)"
tasks_before=$(nr_tasks "$pid")

"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/fix.hpatch" >"$T/apply.out"
check "apply exits 0" true
check "same connection now answers v2" \
	test "$(ask 3 3)" = "quote for 3: 27 EUR (v2, 10% off)"
check "same pid still running" kill -0 "$pid"
check "same number of threads" test "$(nr_tasks "$pid")" -eq "$tasks_before"
sleep 0.3
mark=$(wc -l <"$T/demo.log")
sleep 0.5
tail -n +"$((mark + 1))" "$T/demo.log" >"$T/after.log"
check "workers log v2 quotes" grep -q "EUR (v2, 10% off)" "$T/after.log"
check "workers no longer log v1 quotes" bash -c "! grep -q '(v1)' '$T/after.log'"
"$HPATCH" status -p "$pid" --json >"$T/status.json"
check "status lists the patch" grep -q '"patch_id":"fix"' "$T/status.json"
check "status shows it active" grep -q '"state":"active"' "$T/status.json"

set +e
"$HPATCH" apply -p "$pid" --trust "$T/trust" "$T/fix.hpatch" >/dev/null 2>"$T/again.err"
rc=$?
set -e
check "applying twice exits 3 (already applied)" test "$rc" -eq 3
check "applying twice says so" grep -q "already applied" "$T/again.err"

"$HPATCH" revert -p "$pid" >/dev/null
check "revert exits 0" true
check "same connection answers v1 again" \
	test "$(ask 3 3)" = "quote for 3: 30 EUR (v1)"
"$HPATCH" status -p "$pid" --json >"$T/status2.json"
check "no patch listed after revert" grep -q '"patches":\[\]' "$T/status2.json"
region=$(sed -n 's/.*"region":"0x\([0-9a-f]*\)".*/\1/p' "$T/status.json")
check "patch region unmapped after revert" \
	collected "$pid" bash -c "! grep -q '^$region-' /proc/$pid/maps"
exec 3>&-
finish
