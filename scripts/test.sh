#!/usr/bin/env bash
# Set up, build (warnings are errors) and run the whole test suite: unit,
# cli and end-to-end tests. A skipped test counts as a failure here: ptrace
# works on every machine we test on, so a skip hides a broken test.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bash "$src/scripts/setup.sh"
export HP_BUILD_DIR=${HP_BUILD_DIR:-$src/build}
bash "$src/scripts/build.sh" -DHP_WERROR=ON "$@"
cd "$HP_BUILD_DIR"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
ctest --output-on-failure --timeout 600 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if grep -qE '\*\*\*Skipped|Not Run' "$log"; then
	echo "test: some tests were skipped; failing (see above)" >&2
	exit 1
fi
[ "$status" -eq 0 ] || exit "$status"

# Style: the committed .clang-format, no diff allowed.
cd "$src"
if ! clang-format --dry-run --Werror $(git ls-files '*.c' '*.h') 2>/dev/null; then
	echo "test: clang-format would change files; run clang-format -i" >&2
	exit 1
fi

# A report, not a gate: the longest functions, and any over 80 lines or 6
# parameters (the aim for runtime/ and differ/).
python3 scripts/fn-lengths.py --top 8 runtime/*.c differ/*.c || true

# AddressSanitizer + UndefinedBehaviorSanitizer: unit and CLI tests.
asan=${HP_ASAN_BUILD_DIR:-$src/build-asan}
cmake -S "$src" -B "$asan" -DCMAKE_BUILD_TYPE=Debug -DHP_WERROR=ON \
	-DHP_SANITIZE=address,undefined >/dev/null
cmake --build "$asan" -j"$(nproc)" >/dev/null
(cd "$asan" && ctest --output-on-failure -L 'unit|cli')

# A short fuzz smoke of the patch-file reader (tests/fuzz/run.sh for more).
bash "$src/tests/fuzz/run.sh" "${HP_FUZZ_SECONDS:-20}" | tail -n 4
