#!/usr/bin/env bash
# 1 GiB loop device -> loop device: offload-copy vs dd bs=1M, dd with O_DIRECT, and ddpt's
# default invocation. Needs root (losetup, drop_caches).
#
# Loop devices are created with losetup's defaults (buffered I/O on the backing files, 512-byte
# blocks). Caches are dropped before every run. Two tables:
#   as invoked: each command exactly as written (offload-copy fdatasyncs by default; dd and ddpt
#               do not sync, so their last writes may still sit in the page cache when they exit);
#   + sync:     each command followed by `sync`, i.e. the time until the data is on the disk.
# Runs are interleaved (RUNS rounds, default 3) and the median is reported.
# Usage: bench/loop_copy.sh [DIR]  (DIR holds the two 1 GiB backing files; default /tmp)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
[ "$(id -u)" = 0 ] || die "needs root (losetup, drop_caches)"
[ -x "$OFFLOAD_COPY" ] || die "build first: $OFFLOAD_COPY missing"
command -v ddpt >/dev/null || die "ddpt missing (apt-get install ddpt)"
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
SIZE_MIB=${SIZE_MIB:-1024}
L1= L2=
cleanup() {
  [ -n "$L1" ] && losetup -d "$L1"
  [ -n "$L2" ] && losetup -d "$L2"
  rm -rf "$WORK"
}
trap cleanup EXIT

head -c $((SIZE_MIB << 20)) /dev/urandom > "$WORK/src.img"
fallocate -l $((SIZE_MIB << 20)) "$WORK/dst.img"
L1=$(losetup --find --show "$WORK/src.img")
L2=$(losetup --find --show "$WORK/dst.img")

CMDS[offload-copy]="offload-copy copy SRC DST"
CMDS[dd]="dd if=SRC of=DST bs=1M"
CMDS[dd-direct]="dd if=SRC of=DST bs=1M iflag=direct oflag=direct"
CMDS[ddpt]="ddpt if=SRC of=DST bs=512 bpt=128"
for n in offload-copy dd dd-direct ddpt; do CMDS[$n+sync]="${CMDS[$n]} && sync"; done

ours() { "$OFFLOAD_COPY" copy "$L1" "$L2" --no-progress; }
dd_plain() { dd if="$L1" of="$L2" bs=1M; }
dd_direct() { dd if="$L1" of="$L2" bs=1M iflag=direct oflag=direct; }
ddpt_default() { ddpt if="$L1" of="$L2" bs=512 bpt=128; }
with_sync() { "$@" && sync; }

for ((i = 0; i < RUNS; i++)); do
  for pair in offload-copy:ours dd:dd_plain dd-direct:dd_direct ddpt:ddpt_default; do
    name=${pair%%:*} fn=${pair#*:}
    drop_caches; seconds "$name" "$fn"
    drop_caches; seconds "$name+sync" with_sync "$fn"
  done
done
cmp "$L1" "$L2" || die "destination differs from source"

echo "### 1 GiB loop device -> loop device ($(uname -r), $(nproc) CPUs, backing files on $(df --output=fstype "$DIR" | tail -1))"
echo
echo "Which backend ran: $("$OFFLOAD_COPY" copy "$L1" "$L2" --json --no-progress | grep -o '"planned_backend":"[^"]*"'); ddpt $(ddpt --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1)"
echo
echo "As invoked (caches dropped before each run):"
echo
table $((SIZE_MIB << 20)) offload-copy dd dd-direct ddpt
echo
echo "Each followed by sync (time until the copy is on the disk):"
echo
table $((SIZE_MIB << 20)) offload-copy+sync dd+sync dd-direct+sync ddpt+sync
