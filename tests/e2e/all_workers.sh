#!/usr/bin/env bash
# apply --all in several worker processes (--jobs): every process patched,
# reported in pid order and told the same as one process tells it (stdout,
# stderr, exit code), one audit line each; a worker killed in the middle
# of a process is that process's failure (exit 1, named, audited), never
# silence, and the others are patched by the rest. SIGTERM ends the run
# after the processes begun, and the run dies of it.
. "$(dirname "$0")/lib.bash"
require_ptrace

n=6
make_key k
build_patch svc "$T/svc.hpatch" --key "$T/k.key"
mine=() ports=()
start_all() {
	mine=() ports=()
	for i in $(seq "$1"); do
		start_target "$HP_TD/svc-v1" "$T/svc.$i.log" 0
		mine+=("$TARGET_PID")
		ports+=("$TARGET_PORT")
	done
}
version_of() { # version_of PORT
	local v
	open_conn 5 "$1"
	v=$(ask 5 version)
	exec 5>&-
	echo "$v"
}
# The pids a --json run reported, in its order.
reported() { grep -o '"pid":[0-9]*' "$1" | cut -d: -f2; }
# A run's stdout and stderr without what differs between two runs.
same_output() {
	diff <(sed 's/"pause_us":[0-9]*,"tries":[0-9]*//g' "$1.out") \
		<(sed 's/"pause_us":[0-9]*,"tries":[0-9]*//g' "$2.out") &&
		diff "$1.err" "$2.err"
}
apply_all() { # apply_all NAME ARGS...: exit status in $T/NAME.rc
	local name=$1 rc=0; shift
	"$HPATCH" apply --all --trust "$T/trust" --json "$@" "$T/svc.hpatch" \
		>"$T/$name.out" 2>"$T/$name.err" || rc=$?
	echo "$rc" >"$T/$name.rc"
}

start_all "$n"
apply_all par --jobs 3
check "--jobs 3: exit 0" test "$(cat "$T/par.rc")" -eq 0
nok=0
for p in "${mine[@]}"; do
	grep -q "\"pid\":$p,\"action\":\"apply\",\"result\":\"ok\"" "$T/par.out" && nok=$((nok + 1))
done
check "every one of the $n processes reported ok ($nok)" test "$nok" -eq "$n"
bad=0
for port in "${ports[@]}"; do
	[ "$(version_of "$port")" = v2 ] || bad=$((bad + 1))
done
check "every one runs v2 ($bad do not)" test "$bad" -eq 0
check "reported in pid order" diff <(reported "$T/par.out") <(reported "$T/par.out" | sort -n)
check "one JSON document" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/par.out"
check "every stderr line whole" bash -c "! grep -v '^hpatch: ' '$T/par.err'"
check "one audit line per process" \
	test "$(grep -c '"action":"apply"' "$T/audit.log")" -eq "$n"

# The same run by one process: the same output.
revert=()
for p in "${mine[@]}"; do revert+=(-p "$p"); done
expect_exit 0 "revert them all" "$HPATCH" revert "${revert[@]}"
apply_all seq --jobs 1
check "--jobs 1: exit 0" test "$(cat "$T/seq.rc")" -eq 0
check "--jobs 3 says what --jobs 1 says" same_output "$T/par" "$T/seq"
expect_exit 3 "again with workers: already applied, exit 3" \
	"$HPATCH" apply --all --jobs 2 --trust "$T/trust" "$T/svc.hpatch"
expect_exit 2 "--jobs 0 is a usage error" \
	"$HPATCH" apply --all --jobs 0 --trust "$T/trust" "$T/svc.hpatch"
# A build that no process runs: said alike with workers and without
# (nothing on stdout, exit 9, one audit line).
unique_build svc "$T/nowhere" "$T/nowhere.hpatch" --key "$T/k.key" --id nowhere
: >"$T/audit.log"
for jobs in 1 2; do
	"$HPATCH" apply --all --jobs "$jobs" --trust "$T/trust" --json \
		"$T/nowhere.hpatch" >"$T/none$jobs.out" 2>"$T/none$jobs.err" &&
		rc=0 || rc=$?
	check "--jobs $jobs, no process runs the build: exit 9 ($rc)" test "$rc" -eq 9
done
check "... nothing on stdout" test ! -s "$T/none2.out"
check "... the same error as one process" diff "$T/none1.err" "$T/none2.err"
check "... it names the target" grep -q "no running process maps its target" "$T/none2.err"
check "... one audit line each" \
	test "$(grep -c '"result":"HP_E_NOTARGET"' "$T/audit.log")" -eq 2
for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
PIDS=()

# A worker killed while it holds a process (locked, nothing switched):
# that process fails, named with the worker; the other worker does the
# rest.
start_all 3
: >"$T/audit.log"
HPATCH_DELAY=mmap:1500 "$HPATCH" apply --all --jobs 2 --trust "$T/trust" \
	--json "$T/svc.hpatch" >"$T/kill.out" 2>"$T/kill.err" &
h=$!
workers=""
for _ in $(seq 100); do
	workers=$(pgrep -P "$h" | head -n 2 | tr "\n" " " || true)
	[ "$(echo $workers | wc -w)" -eq 2 ] && break
	sleep 0.02
done
sleep 0.5 # both inside their first process's delay
victim=${workers%% *}
kill -9 "$victim"
wait "$h" && rc=0 || rc=$?
check "a worker killed: exit 1 (got $rc)" test "$rc" -eq 1
check "exactly one process reported as lost" \
	test "$(grep -o '"result":"HP_E_WORKER"' "$T/kill.out" | wc -l)" -eq 1
check "the others ok" \
	test "$(grep -o '"result":"ok"' "$T/kill.out" | wc -l)" -eq 2
check "the error names the worker and its signal" \
	grep -q "the hpatch worker (pid $victim) patching it was killed by signal 9" "$T/kill.err"
check "the lost process is audited" \
	test "$(grep -c '"result":"HP_E_WORKER"' "$T/audit.log")" -eq 1
check "one audit line per process" test "$(wc -l <"$T/audit.log")" -eq 3
lost=$(grep -o '"pid":[0-9]*,"action":"apply","result":"HP_E_WORKER"' "$T/kill.out" | grep -o '[0-9]*' | head -n 1)
for i in 0 1 2; do
	if [ "${mine[$i]}" = "$lost" ]; then
		check "the lost one still serves, old code" test "$(version_of "${ports[$i]}")" = v1
	else
		check "pid ${mine[$i]} runs v2" test "$(version_of "${ports[$i]}")" = v2
	fi
done
for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
PIDS=()

# SIGTERM while both workers hold a process: both finish theirs (reported,
# in order), the third is not begun, and hpatch dies of the signal.
start_all 3
HPATCH_DELAY=mmap:1000 "$HPATCH" apply --all --jobs 2 --trust "$T/trust" \
	--json "$T/svc.hpatch" >"$T/term.out" 2>"$T/term.err" &
h=$!
sleep 0.5
kill -TERM "$h"
wait "$h" && rc=0 || rc=$?
check "SIGTERM: hpatch dies of it (exit $rc)" test "$rc" -eq 143
check "the two begun are reported ok" \
	test "$(grep -o '"result":"ok"' "$T/term.out" | wc -l)" -eq 2
check "... in pid order" test "$(reported "$T/term.out" | tr '\n' ' ')" = "${mine[0]} ${mine[1]} "
check "the third is untouched (v1)" test "$(version_of "${ports[2]}")" = v1
check "the first two run v2" test "$(version_of "${ports[0]}")$(version_of "${ports[1]}")" = v2v2
for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
PIDS=()

# A process whose main thread has exited (pthread_exit) has no executable
# and no map through its leader, as a kernel thread has none: the scan
# finds it through a live thread, with workers or without.
unique_build svc "$T/zsvc" "$T/z.hpatch" --key "$T/k.key" --id z
start_target "$T/zsvc" "$T/zsvc.log" 0 main-exits
z=$TARGET_PID
zport=$TARGET_PORT
for _ in $(seq 50); do grep -q '^State:.*Z' "/proc/$z/status" && break; sleep 0.02; done
check "its main thread is gone" grep -q '^State:.*Z' "/proc/$z/status"
for jobs in 1 2; do
	expect_exit 0 "--all --jobs $jobs: applies to it" \
		"$HPATCH" apply --all --jobs "$jobs" --trust "$T/trust" --json "$T/z.hpatch"
	check "... reported ok" grep -q "\"pid\":$z,\"action\":\"apply\",\"result\":\"ok\"" "$T/last.out"
	check "... runs v2" test "$(version_of "$zport")" = v2
	expect_exit 0 "revert it" "$HPATCH" revert -p "$z"
done
finish
