#!/usr/bin/env bash
# Installs everything offcopy needs to build, test and benchmark on Debian 12 (run as root),
# then prepares the QEMU guest rig (kernel + initramfs, cached in build/vm-cache).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libnvme-dev libjson-c-dev libsgutils2-dev liburing-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  doctest-dev libbenchmark-dev pybind11-dev python3-dev python3-pytest
  nvme-cli sg3-utils ddpt fio util-linux e2fsprogs xfsprogs
  gnuplot-nox  # bench/plot.sh only (docs/img figures), not needed by the tests
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

# QEMU 10 from bookworm-backports (cross-namespace NVMe Copy, real 0x183, blkdebug media errors).
# The suite is added with the mirror this machine already uses for Debian (never a fixed host), and
# pinned so only qemu-system-x86 and what it needs at a backports version come from it.
backports_mirror() {
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
      /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list)
  fi
  echo "${uri:-}"
}
qemu_version() { qemu-system-x86_64 --version 2>/dev/null | awk 'NR == 1 { print $4 }'; }
if [[ $(qemu_version) != 10.* && $(qemu_version) != 9.[1-9]* && $(qemu_version) != 1[1-9].* ]]; then
  mirror=$(backports_mirror)
  if [[ -z $mirror ]]; then
    echo "install-deps: no Debian mirror found in the apt sources; cannot add bookworm-backports" >&2
    exit 1
  fi
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "install-deps: adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" >/etc/apt/sources.list.d/offcopy-backports.sources
  fi
  # Backports is NotAutomatic already; the pin says it in writing so an upgrade never drifts.
  printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n' \
    >/etc/apt/preferences.d/offcopy-backports
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends qemu-system-x86/bookworm-backports
  echo "install-deps: $(qemu-system-x86_64 --version | head -n1)"
fi

if [[ -x tests/vm/setup.sh ]]; then
  tests/vm/setup.sh "${OFFCOPY_VM_CACHE:-$PWD/build/vm-cache}"
fi
