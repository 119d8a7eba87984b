#!/usr/bin/env bash
# Installs everything offcopy needs to build, test and benchmark on Debian 12 (run as root),
# then prepares the QEMU guest rig (kernel + initramfs, cached in build/vm-cache).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libnvme-dev libjson-c-dev libsgutils2-dev liburing-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  libdevmapper-dev  # device-mapper tables (src/core/dm.cpp); libdevmapper1.02.1 is loaded at run time
  doctest-dev libbenchmark-dev pybind11-dev python3-dev python3-pytest python3-jsonschema
  nvme-cli sg3-utils ddpt fio util-linux e2fsprogs xfsprogs
  dmsetup lvm2 fdisk gdisk  # stacked devices: dm tables, LVM, MBR/GPT partitions (host and guest tests)
  gnuplot-nox  # bench/plot.sh only (docs/img figures), not needed by the tests
  clang libclang-rt-dev  # scripts/fuzz.sh: clang 14's -fsanitize=fuzzer (libFuzzer lives in libclang-rt)
  qemu-utils busybox-static cpio kmod
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# QEMU 10 from bookworm-backports (cross-namespace NVMe Copy, real 0x183, blkdebug media errors):
# the suite with this machine's own Debian mirror, pinned; see the script.
scripts/install-qemu.sh

if [[ -x tests/vm/setup.sh ]]; then
  tests/vm/setup.sh "${OFFCOPY_VM_CACHE:-$PWD/build/vm-cache}"
fi
