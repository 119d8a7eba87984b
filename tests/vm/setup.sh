#!/usr/bin/env bash
# tests/vm/setup.sh CACHE_DIR — prepare everything the QEMU guest rig needs.
#
# 1. Installs the host packages the rig and its scenarios use (apt-get, only what is missing;
#    `apt-get update` only when something has to be installed or looked up).
# 2. Downloads the Debian kernel package that `linux-image-amd64` depends on, unpacks it into
#    CACHE_DIR (never installs it on the host) and runs `depmod -b`.
# 3. Builds CACHE_DIR/initrd.img: busybox-static + tests/vm/init.sh as /init + the module closure
#    of the drivers the scenarios need.
#
# Idempotent: stamp files make a second run cost almost nothing and need no network.
# Exit status: 0 ready, 1 error, 77 cannot be done here (not root and packages missing, or the
# kernel cannot be downloaded) — CTest reports that as skipped.
#
# Environment: OFFCOPY_VM_NO_INSTALL=1 skips the package step (check only).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ $# -ne 1 || $1 == -h || $1 == --help ]]; then
    echo "usage: $0 CACHE_DIR" >&2
    exit 2
fi
cache=$1
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "vm-setup: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }

# ---------------------------------------------------------------------------------------------
# 1. host packages
# Tools the scenarios run inside the guest come from the host root (shared read-only over 9p),
# so they are host packages too.
# qemu-system-x86 itself comes from bookworm-backports (QEMU 10: cross-namespace Copy), below.
packages=(qemu-utils busybox-static cpio kmod nvme-cli sg3-utils ddpt fio
          e2fsprogs util-linux python3 bash coreutils
          dmsetup lvm2 fdisk gdisk)  # stacked devices: dm tables, LVM, MBR (sfdisk) and GPT (sgdisk)

# One dpkg-query for all (a loop costs seconds on a loaded machine).
declare -A installed
while read -r name status; do
    [[ $status == "install ok installed" ]] && installed[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for p in "${packages[@]}"; do
    [[ -n ${installed[$p]:-} ]] || missing+=("$p")
done

apt_updated=0
apt_update() {
    if [[ $apt_updated == 0 ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
}

if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ ${OFFCOPY_VM_NO_INSTALL:-0} == 1 ]]; then
        skip "missing packages (OFFCOPY_VM_NO_INSTALL=1): ${missing[*]}"
    fi
    if [[ $(id -u) != 0 ]]; then
        skip "missing packages and not root: ${missing[*]} (run: sudo $0 $cache)"
    fi
    apt_update
    log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# QEMU >= 9.1 (the scenarios prove cross-namespace Copy): scripts/install-qemu.sh adds
# bookworm-backports pinned and installs QEMU 10 from it when the installed one is older.
qemu_v=$(qemu-system-x86_64 --version 2>/dev/null | awk 'NR == 1 { print $4 }')
if [[ ! $qemu_v =~ ^(9\.[1-9]|[1-9][0-9]+\.) ]]; then
    [[ ${OFFCOPY_VM_NO_INSTALL:-0} == 1 ]] && skip "QEMU ${qemu_v:-missing}, the rig needs >= 9.1 (OFFCOPY_VM_NO_INSTALL=1)"
    [[ $(id -u) == 0 ]] || skip "QEMU ${qemu_v:-missing}, the rig needs >= 9.1, and not root (run: sudo scripts/install-qemu.sh)"
    "$here/../../scripts/install-qemu.sh" >&2 || { log "installing QEMU from bookworm-backports failed"; exit 1; }
fi
log "$(qemu-system-x86_64 --version | head -n1)"

# ---------------------------------------------------------------------------------------------
# 2. kernel
kdir=$cache/kernel
kstamp=$cache/.stamp-kernel
if [[ ! -f $kstamp || ! -f $cache/vmlinuz ]]; then
    kernel_pkg() {
        apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\.0-[0-9]+-amd64$/ { print $2; exit }'
    }
    pkg=$(kernel_pkg || true)
    if [[ -z $pkg ]]; then
        [[ $(id -u) == 0 ]] || skip "apt lists do not name the kernel package and not root"
        apt_update
        pkg=$(kernel_pkg || true)
    fi
    [[ -n $pkg ]] || skip "cannot find the 6.1 kernel package linux-image-amd64 depends on"
    version=${pkg#linux-image-}
    log "kernel package $pkg"

    rm -rf "$kdir"
    mkdir -p "$kdir/deb"
    # apt-get download as root into a directory _apt cannot write only warns; keep quiet.
    if ! (cd "$kdir/deb" && apt-get download -qq "$pkg" >&2 2>/dev/null); then
        # Stale lists can name a version the mirror no longer has.
        if [[ $apt_updated == 0 && $(id -u) == 0 ]]; then
            apt_update
            (cd "$kdir/deb" && apt-get download -qq "$pkg" >&2 2>/dev/null) ||
                skip "apt-get download $pkg failed"
        else
            skip "apt-get download $pkg failed"
        fi
    fi
    deb=$(ls "$kdir"/deb/*.deb)
    log "unpacking $(basename "$deb")"
    dpkg-deb -x "$deb" "$kdir/root"
    depmod -b "$kdir/root" "$version"
    cp "$kdir/root/boot/vmlinuz-$version" "$cache/vmlinuz"
    echo "$version" >"$cache/kernel-version"
    rm -f "$deb"
    echo "$pkg" >"$kstamp"
    rm -f "$cache/.stamp-initrd"
fi
version=$(cat "$cache/kernel-version")

# The kernel uncompressed, for a PVH boot: QEMU loads an ELF kernel with the PVH entry note straight
# into memory, so the guest skips the bzImage's XZ decompression under emulation (6-25 s of every
# boot on this 2-core host, most of the time between QEMU's start and the kernel's). Without the
# note (or an XZ payload) vmrun.py boots vmlinuz as before.
if [[ ! -f $cache/vmlinux.checked || $cache/vmlinux.checked -ot $cache/vmlinuz ]]; then
    rm -f "$cache/vmlinux" "$cache/vmlinux.checked"
    if python3 - "$cache/vmlinuz" "$cache/vmlinux.tmp" <<'PYEOF'; then
import lzma, struct, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")  # the XZ stream inside the bzImage (scripts/extract-vmlinux)
if at < 0:
    sys.exit("vmlinuz holds no XZ stream")
elf = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data[at:])
if elf[:5] != b"\x7fELF\x02":
    sys.exit("the XZ stream is not a 64-bit ELF")
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
pvh = False
for i in range(phnum):
    p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
    at, end = p_offset, p_offset + p_filesz
    while p_type == 4 and at + 12 <= end:  # PT_NOTE: namesz, descsz, type, name, desc (4-aligned)
        namesz, descsz, ntype = struct.unpack_from("<III", elf, at)
        name = elf[at + 12:at + 12 + namesz].rstrip(b"\0")
        pvh |= name == b"Xen" and ntype == 18  # XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point
        at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
if not pvh:
    sys.exit("the kernel has no PVH entry note")
open(sys.argv[2], "wb").write(elf)
PYEOF
        mv "$cache/vmlinux.tmp" "$cache/vmlinux"
        log "vmlinux: PVH boot ($(du -h "$cache/vmlinux" | cut -f1))"
    else
        rm -f "$cache/vmlinux.tmp"
        log "vmlinux: none, the guest boots vmlinuz"
    fi
    touch "$cache/vmlinux.checked"
fi

# ---------------------------------------------------------------------------------------------
# 3. initramfs
# Everything the guest loads at boot. The closure (dependencies) comes from modules.dep.
modules=(virtio_pci virtio_blk 9p 9pnet_virtio configfs
         nvme nvme_core nvme_tcp nvme_fabrics nvmet nvmet_tcp
         sd_mod sg target_core_mod target_core_file target_core_iblock tcm_loop
         ext4 crc32c_generic crc32c_intel loop
         dm_mod dm_multipath dm_round_robin dm_delay)  # dm: linear/striped built into dm_mod; delay = an opaque target

busybox=$(command -v busybox || true)
[[ -x /bin/busybox ]] && busybox=/bin/busybox
[[ -n $busybox ]] || { log "busybox not found"; exit 1; }
file "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    ldd "$busybox" 2>&1 | grep -q 'not a dynamic' ||
    { log "$busybox is not static (install busybox-static)"; exit 1; }

want_hash=$( (cat "$here/setup.sh" "$here/init.sh"; echo "$version" "${modules[*]}";
              sha256sum "$busybox") | sha256sum | cut -c1-16)
istamp=$cache/.stamp-initrd
if [[ -f $istamp && -f $cache/initrd.img && $(cat "$istamp") == "$want_hash" ]]; then
    log "ready: $cache (kernel $version)"
    exit 0
fi

mroot=$kdir/root/lib/modules/$version
[[ -f $mroot/modules.dep ]] || { log "no modules.dep in $mroot"; exit 1; }

# name (with '-' folded to '_') -> line of modules.dep
declare -A dep_of
while IFS= read -r line; do
    mod=${line%%:*}
    name=${mod##*/}
    name=${name%.ko*}
    dep_of[${name//-/_}]=$line
done <"$mroot/modules.dep"

declare -A have
files=()
add_module() {
    local name=${1//-/_} line mod deps d
    [[ -n ${have[$name]:-} ]] && return 0
    line=${dep_of[$name]:-}
    if [[ -z $line ]]; then
        if grep -q "/${1}.ko\$\|/${name}.ko\$" "$mroot/modules.builtin" 2>/dev/null; then
            have[$name]=builtin
            return 0
        fi
        log "module $1 not found"
        return 1
    fi
    have[$name]=1
    mod=${line%%:*}
    deps=${line#*:}
    files+=("$mod")
    for d in $deps; do
        d=${d##*/}
        add_module "${d%.ko*}"
    done
}
for m in "${modules[@]}"; do add_module "$m"; done

stage=$(mktemp -d "$cache/initrd-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,newroot,share,oldtmp,etc} "$stage/lib/modules/$version"
cp "$busybox" "$stage/bin/busybox"
install -m 0755 "$here/init.sh" "$stage/init"
for f in "${files[@]}"; do
    mkdir -p "$stage/lib/modules/$version/$(dirname "$f")"
    cp "$mroot/$f" "$stage/lib/modules/$version/$f"
done
cp "$mroot"/modules.order "$mroot"/modules.builtin "$mroot"/modules.builtin.modinfo \
    "$stage/lib/modules/$version/"
depmod -b "$stage" "$version"
# The load order for /init: every module of the closure; modprobe pulls dependencies first.
printf '%s\n' "${modules[@]}" >"$stage/etc/modules"
echo "$version" >"$stage/etc/kernel-version"
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

(cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) |
    gzip -1 >"$cache/initrd.img.tmp"
mv "$cache/initrd.img.tmp" "$cache/initrd.img"
echo "$want_hash" >"$istamp"
log "initramfs: ${#files[@]} modules, $(du -h "$cache/initrd.img" | cut -f1)"
log "ready: $cache (kernel $version)"
