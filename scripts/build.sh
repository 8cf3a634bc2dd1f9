#!/usr/bin/env bash
# Configure and build into ${HP_BUILD_DIR:-build} (extra cmake args pass through).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${HP_BUILD_DIR:-$src/build}
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=${HP_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
