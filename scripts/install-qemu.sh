#!/usr/bin/env bash
# scripts/install-qemu.sh — makes qemu-system-x86_64 a version with cross-namespace NVMe Copy
# (QEMU >= 9.1; Debian 12 ships 7.2): adds Debian's bookworm-backports suite with the mirror this
# machine already uses for Debian (never a fixed host), pins it so nothing else comes from it, and
# installs qemu-system-x86 from it (which pulls only qemu-system-common, qemu-system-data and
# seabios from backports). Idempotent: does nothing when a recent enough QEMU is installed.
# Run as root. Used by scripts/install-deps.sh and tests/vm/setup.sh.
set -euo pipefail

qemu_version() { qemu-system-x86_64 --version 2>/dev/null | awk 'NR == 1 { print $4 }'; }
recent_enough() { # 9.1 or later
    local v
    v=$(qemu_version)
    [[ -n $v ]] || return 1
    local major=${v%%.*} rest=${v#*.}
    local minor=${rest%%.*}
    ((major > 9 || (major == 9 && minor >= 1)))
}
if recent_enough; then
    echo "install-qemu: $(qemu-system-x86_64 --version | head -n1)"
    exit 0
fi
[[ $(id -u) == 0 ]] || { echo "install-qemu: QEMU $(qemu_version) is older than 9.1 and not root" >&2; exit 1; }

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
mirror=$(backports_mirror)
if [[ -z $mirror ]]; then
    echo "install-qemu: no Debian mirror found in the apt sources; cannot add bookworm-backports" >&2
    exit 1
fi
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "install-qemu: adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" >/etc/apt/sources.list.d/offcopy-backports.sources
fi
# Backports is NotAutomatic already; the pin says it in writing so an upgrade never drifts.
printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n' \
    >/etc/apt/preferences.d/offcopy-backports
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends qemu-system-x86/bookworm-backports
recent_enough || { echo "install-qemu: still $(qemu_version) after installing from backports" >&2; exit 1; }
echo "install-qemu: $(qemu-system-x86_64 --version | head -n1)"
