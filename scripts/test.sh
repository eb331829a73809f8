#!/usr/bin/env bash
# Builds kiln and runs every test (unit and integration). Run scripts/install-deps.sh first.
# Extra arguments go to ctest (e.g. -L unit, -R Config).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DKILN_WERROR=ON >/dev/null
ninja -C build
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
