#!/usr/bin/env bash
# hpatch apply --all finds every process mapping the target build (and
# only those), patches each, reports each, and the exit code says whether
# all succeeded. 200 targets by default (HP_E2E_NR_PROCS to change), one
# more of them running as another user (nobody): root patches any user's.
# Then a shared library and a non-PIE executable, two processes each.
# Every build here is a copy of its own (unique_build): other tests'
# processes of the same build are never patched.
. "$(dirname "$0")/lib.bash"
require_ptrace

n=${HP_E2E_NR_PROCS:-200}
make_key k
chmod 755 "$T" # (for nobody, below)
unique_build svc "$T/svc-v1" "$T/svc.hpatch" --key "$T/k.key"
mine=()
for i in $(seq "$n"); do
	"$T/svc-v1" 0 >"$T/svc.$i.log" 2>&1 &
	PIDS+=($!)
	mine+=($!)
done
# Run as nobody, who can reach it wherever the build tree lies.
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$T/svc-v1" 0 >"$T/svc.nobody.log" 2>&1 &
PIDS+=($!)
nobody=$!
"$HP_TD/demo-v1" 0 1 >"$T/demo.log" 2>&1 & # another build
PIDS+=($!)
other=$!
# Another test's process of the build this copy was made from: not ours.
start_target "$HP_TD/svc-v1" "$T/bystander.log" 0
bystander=$TARGET_PID
for _ in $(seq 200); do
	[ "$(grep -l ready "$T"/svc.*.log 2>/dev/null | wc -l)" -gt "$n" ] && break
	sleep 0.05
done
start=$(date +%s%N)
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
check "the original build's process was left alone" \
	bash -c "! grep -q '\"pid\":$bystander,' '$T/last.out'"
port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$T/svc.$n.log")
open_conn 3 "$port"
check "the last one runs v2" test "$(ask 3 version)" = v2
exec 3>&-
check "audit log has a line per process" \
	test "$(grep -c '"action":"apply"' "$T/audit.log")" -ge "$n"
expect_exit 3 "apply --all again: already applied everywhere" \
	"$HPATCH" apply --all --trust "$T/trust" "$T/svc.hpatch"

# A shared library, found by its build-id in each process that loaded it,
# and a non-PIE executable: two processes each.
O=$HP_TD/CMakeFiles
mkdir "$T/lib"
unique_copy "$HP_TD/libgreet-v1.so" "$T/lib/libgreet-v1.so"
"$HPDIFF" --old "$O/greet-v1.objs.dir" --new "$O/greet-v2.objs.dir" \
	--binary "$T/lib/libgreet-v1.so" --key "$T/k.key" \
	-o "$T/lib.hpatch" -q >/dev/null
unique_build svc_nopie "$T/svc_nopie-v1" "$T/nopie.hpatch" --key "$T/k.key"
hosts=() nopies=()
for i in 1 2; do
	# (LD_LIBRARY_PATH comes before greet_host's RUNPATH.)
	LD_LIBRARY_PATH=$T/lib start_target "$HP_TD/greet_host" "$T/host.$i.log"
	hosts+=("$TARGET_PID:$TARGET_PORT")
	start_target "$T/svc_nopie-v1" "$T/nopie.$i.log" 1
	nopies+=("$TARGET_PID:$TARGET_PORT")
done
start_target "$HP_TD/greet_host" "$T/host.bystander.log"
lib_bystander=$TARGET_PID
start_target "$HP_TD/svc_nopie-v1" "$T/nopie.bystander.log" 1
nopie_bystander=$TARGET_PID
for kind in lib nopie; do
	"$HPATCH" apply --all --trust "$T/trust" --json "$T/$kind.hpatch" \
		>"$T/$kind.out" 2>"$T/$kind.err" || true
done
for t in "${hosts[@]}"; do
	check "--all patched the library in pid ${t%:*}" grep -q \
		"\"pid\":${t%:*},\"action\":\"apply\",\"result\":\"ok\",.*libgreet-v1.so" "$T/lib.out"
	open_conn 5 "${t#*:}"
	check "... which answers v2" test "$(ask 5 al)" = "HELLO al (lib v2, call 1, style 1)"
	exec 5>&-
done
check "the original library's user was left alone" \
	bash -c "! grep -q '\"pid\":$lib_bystander,' '$T/lib.out'"
check "the original non-PIE build's process was left alone" \
	bash -c "! grep -q '\"pid\":$nopie_bystander,' '$T/nopie.out'"
for t in "${nopies[@]}"; do
	check "--all patched non-PIE pid ${t%:*}" grep -q \
		"\"pid\":${t%:*},\"action\":\"apply\",\"result\":\"ok\"" "$T/nopie.out"
	open_conn 5 "${t#*:}"
	check "... which answers v2" test "$(ask 5 version)" = v2
	exec 5>&-
done
finish
