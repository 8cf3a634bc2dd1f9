#!/usr/bin/env bash
# hpatch apply --all finds every process mapping the target build (and
# only those), patches each, reports each, and the exit code says whether
# all succeeded. 200 targets by default (HP_E2E_NR_PROCS to change), one
# more of them running as another user (nobody): root patches any user's.
. "$(dirname "$0")/lib.bash"
require_ptrace

n=${HP_E2E_NR_PROCS:-200}
make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
mine=()
for i in $(seq "$n"); do
	"$HP_BUILD/testdata/svc-v1" 0 >"$T/svc.$i.log" 2>&1 &
	PIDS+=($!)
	mine+=($!)
done
# A copy (same build-id) that nobody can reach wherever the tree lies.
chmod 755 "$T"
install -m 755 "$HP_BUILD/testdata/svc-v1" "$T/svc-v1"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$T/svc-v1" 0 >"$T/svc.nobody.log" 2>&1 &
PIDS+=($!)
nobody=$!
"$HP_BUILD/testdata/demo-v1" 0 1 >"$T/demo.log" 2>&1 & # another build
PIDS+=($!)
other=$!
for _ in $(seq 200); do
	[ "$(grep -l ready "$T"/svc.*.log 2>/dev/null | wc -l)" -gt "$n" ] && break
	sleep 0.05
done
start=$(date +%s%N)
# Other processes of this build on the host would be patched too and
# decide the exit code; the checks below look at ours by pid.
"$HPATCH" apply --all --trust "$T/trust" --json "$T/svc.hpatch" >"$T/last.out" 2>"$T/last.err" || true
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "apply --all: $n processes in $ms ms ($((ms * 1000 / n)) us per process)"
nok=0
for p in "${mine[@]}"; do
	grep -q "\"pid\":$p,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out" && nok=$((nok + 1))
done
check "every one of our $n processes reported ok ($nok)" test "$nok" -eq "$n"
check "the process of user nobody reported ok" \
	grep -q "\"pid\":$nobody,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"
check "it runs as nobody" test "$(ps -o user= -p "$nobody")" = nobody
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$T/svc.nobody.log")
open_conn 4 "$port"
check "nobody's process runs v2" test "$(ask 4 version)" = v2
exec 4>&-
check "the other build was left alone" bash -c "! grep -q '\"pid\":$other,' '$T/last.out'"
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$T/svc.$n.log")
open_conn 3 "$port"
check "the last one runs v2" test "$(ask 3 version)" = v2
exec 3>&-
check "audit log has a line per process" \
	test "$(grep -c '"action":"apply"' "$T/audit.log")" -ge "$n"
expect_exit 3 "apply --all again: already applied everywhere" \
	"$HPATCH" apply --all --trust "$T/trust" "$T/svc.hpatch"
finish
