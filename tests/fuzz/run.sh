#!/usr/bin/env bash
# Fuzz the .hpatch reader for SECONDS (default 60) under ASan + UBSan,
# seeded with the hostile corpus. Prints libFuzzer's summary; fails on any
# crash, leak or sanitizer report. usage: tests/fuzz/run.sh [SECONDS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
build=${HP_FUZZ_BUILD_DIR:-$src/build-fuzz}
CC=clang cmake -S "$src" -B "$build" -DHP_FUZZ=ON -DHP_BUILD_TESTS=OFF \
	-DHP_SANITIZE=address,undefined,fuzzer-no-link >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_pack_read >/dev/null
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$src"/testdata/hostile/*.hpatch "$corpus/"
"$build/tests/fuzz/fuzz_pack_read" -max_total_time="$secs" -max_len=65536 \
	-print_final_stats=1 "$corpus" 2>&1 | tail -n 12
