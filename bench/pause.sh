#!/usr/bin/env bash
# Print the pause of applying a ten-function patch to targets with 1, 16,
# 64 and 256 spinning threads beside the stop-and-resume floor, and the
# time per process of --all (run as root, after scripts/build.sh).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
B=${HP_BUILD_DIR:-$src/build}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
"$B/differ/hpdiff" --old "$B/testdata/CMakeFiles/spin-v1.objs.dir" \
	--new "$B/testdata/CMakeFiles/spin-v2.objs.dir" \
	--binary "$B/testdata/spin-v1" -o "$t/spin.hpatch" -q >/dev/null
"$B/bench/bench_pause" "$B/testdata/spin-v1" "$t/spin.hpatch" "$@"
