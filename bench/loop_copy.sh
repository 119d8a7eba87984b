#!/usr/bin/env bash
# 1 GiB loop device -> loop device: offload-copy vs dd bs=1M, dd with O_DIRECT, and ddpt's
# default invocation. Needs root (losetup, drop_caches).
#
# Loop devices are created with losetup's defaults (buffered I/O on the backing files, 512-byte
# blocks). Caches are dropped before every run. Two tables, each tool doing the same work:
#   no sync:  nobody syncs: dd and ddpt exactly as commonly invoked (ddpt's defaults bs=512
#             bpt=128 spelled out), offload-copy with --no-sync;
#   durable:  every tool ends with fdatasync of the destination (offload-copy by default, dd
#             conv=fdatasync, ddpt oflag=fdatasync); on a loop device that flush makes the loop
#             driver fsync its backing file, so this is the time until the copy is on the disk.
# Runs are interleaved (RUNS rounds, default 3); the median and the best run are reported, with
# ratios on both (the best run is the one least disturbed by other load on a shared host).
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

CMDS[offload-copy]="offload-copy copy SRC DST --no-sync"
CMDS[dd]="dd if=SRC of=DST bs=1M"
CMDS[dd-direct]="dd if=SRC of=DST bs=1M iflag=direct oflag=direct"
CMDS[ddpt]="ddpt if=SRC of=DST bs=512 bpt=128"
CMDS[offload-copy+sync]="offload-copy copy SRC DST"
CMDS[dd+sync]="dd if=SRC of=DST bs=1M conv=fdatasync"
CMDS[dd-direct+sync]="dd if=SRC of=DST bs=1M iflag=direct oflag=direct conv=fdatasync"
CMDS[ddpt+sync]="ddpt if=SRC of=DST bs=512 bpt=128 oflag=fdatasync"

run() {  # run NAME: exactly the command shown in the table, SRC and DST being the loop devices
  local cmd=${CMDS[$1]//SRC/$L1}
  local words; read -r -a words <<< "${cmd//DST/$L2}"
  [ "${words[0]}" = offload-copy ] && words=("$OFFLOAD_COPY" "${words[@]:1}" --no-progress)
  "${words[@]}"
}

for ((i = 0; i < RUNS; i++)); do
  for name in offload-copy dd dd-direct ddpt offload-copy+sync dd+sync dd-direct+sync ddpt+sync; do
    drop_caches; seconds "$name" run "$name"
  done
done
cmp "$L1" "$L2" || die "destination differs from source"

echo "### ${SIZE_MIB} MiB loop device -> loop device ($(uname -r), $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg), backing files on $(df --output=fstype "$DIR" | tail -1))"
echo
echo "Which backend ran: $("$OFFLOAD_COPY" copy "$L1" "$L2" --json --no-progress | grep -o '"planned_backend":"[^"]*"'); ddpt $(ddpt --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1)"
echo
echo "No sync by any tool (caches dropped before each run):"
echo
table $((SIZE_MIB << 20)) offload-copy dd dd-direct ddpt
echo
echo "Durable: every tool ends with fdatasync of the destination (caches dropped before each run):"
echo
table $((SIZE_MIB << 20)) offload-copy+sync dd+sync dd-direct+sync ddpt+sync
