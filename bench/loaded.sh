#!/usr/bin/env bash
# Print the pause of apply and of revert (p50, p90, max over
# HP_BENCH_ROUNDS each, default 20) of a small service (svc: 3 workers, 7
# threads, asleep between requests) on a busy host: HP_BENCH_BUSY loops
# (default: two per CPU) spinning at normal priority beside it, as other
# work would. Each stopped thread must get a CPU to reach its stop
# (run as root, after scripts/build.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
. "$src/bench/lib.bash"
busy=${HP_BENCH_BUSY:-$((2 * $(nproc)))}
rounds=${HP_BENCH_ROUNDS:-20}
t=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$t"' EXIT
export HPATCH_STATE_DIR=$t/state

bench_patch "$t" svc
"$B/testdata/svc-v1" 3 >"$t/svc.log" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 100); do
	grep -qs ready "$t/svc.log" && break
	sleep 0.05
done
for _ in $(seq "$busy"); do
	(while :; do :; done) &
	pids+=($!)
done
sleep 0.3
pause() { grep -o '"pause_us":[0-9]*' | cut -d: -f2; }
for _ in $(seq "$rounds"); do
	"$B/runtime/hpatch" apply -p "$pid" --trust "$t/trust" --json \
		"$t/svc.hpatch" 2>/dev/null | pause >>"$t/apply"
	"$B/runtime/hpatch" revert -p "$pid" --json 2>/dev/null |
		pause >>"$t/revert"
done
for w in apply revert; do
	sort -n "$t/$w" | awk -v w="$w" -v b="$busy" \
		-v n="$(ls "/proc/$pid/task" | wc -l)" '
		{ v[NR] = $1 }
		END {
			printf "loaded: %s threads=%d busy=%d n=%d p50_us=%d p90_us=%d max_us=%d\n",
				w, n, b, NR, v[int((NR - 1) * 0.5) + 1],
				v[int((NR - 1) * 0.9) + 1], v[NR]
		}'
done
