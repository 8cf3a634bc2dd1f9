#!/usr/bin/env bash
# --all over 8 targets or more looks for processes sharing a target's
# memory in an index of the host, built before the first target. A
# target that starts one (clone(CLONE_VM)) after that, before its turn,
# must still be refused while it runs: the tasks created since the index
# are asked too, by hpatch itself (--jobs 1) or by each worker.
. "$(dirname "$0")/lib.bash"
require_ptrace

make_key k
unique_build svc "$T/svc" "$T/p.hpatch" --key "$T/k.key" --id p
tg=()
for i in $(seq 8); do
	start_target "$T/svc" "$T/svc.$i.log" 1
	tg+=("$TARGET_PID")
	port[$i]=$TARGET_PORT
done
held() { # a target held by hpatch (the index is built by then)
	for p in "${tg[@]}"; do
		[ "$(awk '/^TracerPid:/ {print $2}' "/proc/$p/status")" != 0 ] &&
			echo "$p" && return
	done
	return 1
}
for jobs in 1 2; do
	# Each target held 400 ms at its stop: the run lasts.
	HPATCH_DELAY=seize:400 "$HPATCH" apply --trust "$T/trust" \
		--timeout 300 --all --jobs "$jobs" --json "$T/p.hpatch" \
		>"$T/all.out" 2>"$T/all.err" &
	hp=$!
	first=
	for _ in $(seq 500); do
		first=$(held) && break
		sleep 0.01
	done
	# The last target (the highest pid) not the one held: its turn
	# comes later.
	for i in 8 7; do
		[ "${tg[$((i - 1))]}" != "$first" ] && vi=$i && break
	done
	victim=${tg[$((vi - 1))]}
	open_conn 3 "${port[$vi]}"
	open_conn 4 "${port[$vi]}"
	sharer=$(ask 3 "share 30000")
	rc=0
	wait "$hp" || rc=$?
	check "--jobs $jobs: a sharer started after the index ($sharer): exit $rc, want 4" \
		test "$rc" -eq 4
	check "... names it" grep -q "pid $victim: shares its memory with pid $sharer " "$T/all.err"
	check "... its target still v1" test "$(ask 4 version)" = v1
	kill -9 "$sharer" 2>/dev/null || true
	exec 3>&- 4>&-
	for p in "${tg[@]}"; do "$HPATCH" revert -p "$p" >/dev/null 2>&1 || true; done
done
finish
