#!/usr/bin/env bash
# scripts/main-job.sh — the main job, end to end: install dependencies (QEMU 10 from
# bookworm-backports), build offcopy (Release), then boot the QEMU guest and copy 64 MiB from one
# NVMe namespace to another of the same controller with offload-copy — offloaded as cross-namespace
# NVMe Copy, verified — and then to a namespace with 4 KiB blocks, which falls back and says why
# (tests/vm/scenarios/demo.sh), streaming the scenario's output (the copy reports) here.
# Exit status: the guest runner's (0 pass, 1 fail, 77 skipped — which counts as a failure here).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [[ -f scripts/install-deps.sh ]]; then
    bash scripts/install-deps.sh
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
tests/vm/setup.sh build/vm-cache
export OFFCOPY_REQUIRE_VM=1
export OFFCOPY_BUILD=$repo/build
export OFFCOPY_BIN=$repo/build/offload-copy
[[ -x $OFFCOPY_BIN ]] || { echo "main-job: $OFFCOPY_BIN was not built" >&2; exit 1; }
exec /usr/bin/python3 tests/vm/vmrun.py --cache build/vm-cache \
    --scenario tests/vm/scenarios/demo.sh --log build/vm-logs/demo.log
