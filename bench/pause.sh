#!/usr/bin/env bash
# Print the pause of applying a ten-function patch to targets with 1, 16,
# 64 and 256 spinning threads beside the stop-and-resume floor, and the
# time per process of --all (run as root, after scripts/build.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
. "$src/bench/lib.bash"
t=$(mktemp -d)
trap 'rm -rf "$t" "/tmp/hp-probe-$$-"*' EXIT
# What a perf map's creation costs now (bench/tmp_probe.c): --all makes
# one a process; on an ext4 without a journal, far more for minutes after
# files were removed there. Compare runs only at like costs.
"$B/bench/bench_tmp_probe" "/tmp/hp-probe-$$-" 100
"$B/differ/hpdiff" --old "$B/testdata/CMakeFiles/spin-v1.objs.dir" \
	--new "$B/testdata/CMakeFiles/spin-v2.objs.dir" \
	--binary "$B/testdata/spin-v1" -o "$t/spin.hpatch" -q >/dev/null
"$B/bench/bench_pause" "$B/testdata/spin-v1" "$t/spin.hpatch" "$@"

# --all over N idle services (HP_BENCH_NR_PROCS, default 200) of one build.
n=${HP_BENCH_NR_PROCS:-200}
bench_patch "$t" svc
pids=()
# The perf maps hpatch wrote for them (runtime/rt_perfmap.c) go with them,
# removed while each pid is still this script's child's: a map left is
# found by the next process of its pid (200 a run, the most of the stale
# maps in /tmp).
end_svcs() {
	local p
	for p in "${pids[@]}"; do
		[ "$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null)" = $$ ] &&
			rm -f "/tmp/perf-$p.map"
	done
	kill "${pids[@]}" 2>/dev/null
}
trap 'end_svcs; rm -rf "$t" "/tmp/hp-probe-$$-"*' EXIT
for i in $(seq "$n"); do
	"$B/testdata/svc-v1" 0 >"$t/svc.$i.log" 2>&1 &
	pids+=($!)
done
for _ in $(seq 200); do
	[ "$(grep -l ready "$t"/svc.*.log 2>/dev/null | wc -l)" -eq "$n" ] && break
	sleep 0.05
done
export HPATCH_STATE_DIR=$t/state
start=$(date +%s%N)
"$B/runtime/hpatch" apply --all --trust "$t/trust" --json "$t/svc.hpatch" \
	>"$t/all.json" 2>"$t/all.err" || true
us=$((($(date +%s%N) - start) / 1000))
ok=$(grep -o '"result":"ok"' "$t/all.json" | wc -l)
echo "all: processes=$n ok=$ok total_ms=$((us / 1000)) per_process_us=$((us / n))"
