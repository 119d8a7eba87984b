#!/usr/bin/env bash
# 1 GiB loop device -> loop device (issue 13.2): offload-copy vs `dd bs=1M iflag=direct oflag=direct`
# and ddpt's default invocation, and the physical limit of this machine for the same transfer.
#
# Loop devices are made with losetup's defaults (buffered I/O on the backing files, 512-byte
# blocks), backing files in DIR. Caches are dropped before every run. Two comparisons, every tool
# doing the same work:
#   no sync:  `offload-copy copy SRC DST --no-sync`, `dd ... iflag=direct oflag=direct`,
#             `ddpt if=SRC of=DST bs=512 bpt=128` (ddpt's defaults spelled out);
#   durable:  every tool ends with fdatasync of the destination (offload-copy by default, dd
#             conv=fdatasync, ddpt oflag=fdatasync); on a loop device that flush makes the loop
#             driver fsync its backing file.
# Targets: >= 1.3x dd O_DIRECT and >= 2.5x ddpt (no sync; the durable ratios are reported too).
# Physical limit: fio alone, O_DIRECT, 1 MiB blocks, caches dropped, 1 and 16 in flight, 3 times
# each: the best read of the source loop device and the best write of the destination loop device
# (and the same on the backing file system, for reference). A copy can be no faster than the slower
# of those two; the report says how close offload-copy comes to that bound.
# Every offload-copy result is compared with the source: a difference ends the script with status 3.
# Usage: sudo bench/loop_copy.sh [DIR]  (DIR holds the two 1 GiB backing files; default /tmp)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "loop_copy.sh (losetup, drop_caches)"
need_offload_copy
need_tool ddpt "apt-get install ddpt"
need_tool fio "apt-get install fio"
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
SIZE_MIB=${SIZE_MIB:-1024}
FS=$(df --output=fstype "$DIR" | tail -1 | tr -d ' ')
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
begin_case "loop_${FS}" $((SIZE_MIB << 20))

CMDS[offload-copy]="offload-copy copy SRC DST --no-sync"
CMDS[dd-direct]="dd if=SRC of=DST bs=1M iflag=direct oflag=direct"
CMDS[ddpt]="ddpt if=SRC of=DST bs=512 bpt=128"
CMDS[offload-copy+sync]="offload-copy copy SRC DST"
CMDS[dd-direct+sync]="dd if=SRC of=DST bs=1M iflag=direct oflag=direct conv=fdatasync"
CMDS[ddpt+sync]="ddpt if=SRC of=DST bs=512 bpt=128 oflag=fdatasync"

run() {  # run NAME: exactly the command shown in the table, SRC and DST being the loop devices
  local cmd=${CMDS[$1]//SRC/$L1}
  local words; read -r -a words <<< "${cmd//DST/$L2}"
  [ "${words[0]}" = offload-copy ] && words=("$OFFLOAD_COPY" "${words[@]:1}" --no-progress)
  "${words[@]}"
}
check() { drop_caches; cmp -s "$L1" "$L2" || wrong_bytes "offload-copy: $L2 differs from $L1"; }
wipe() { dd if=/dev/zero of="$L2" bs=4M count=1 oflag=direct status=none; }

for ((i = 0; i < RUNS; i++)); do
  for name in offload-copy dd-direct ddpt offload-copy+sync dd-direct+sync ddpt+sync; do
    wipe; drop_caches; seconds "$name" run "$name"
    case $name in offload-copy*) check ;; esac
  done
done

# Physical limits, each measured alone: MiB/s of fio's O_DIRECT transfer, the best of 1 and 16 in
# flight, 3 times each (a limit is what the machine can do at best; the median moves with the load).
fio_mibs() {  # fio_mibs read|write FILE DEPTH: MiB/s
  local rw=$1 file=$2 out
  drop_caches
  out=$(fio --name=limit --filename="$file" --rw="$rw" --bs=1M --size=$((SIZE_MIB << 20)) --direct=1 \
    --ioengine=io_uring --iodepth="$3" --numjobs=1 --output-format=terse 2>/dev/null)
  if [ "$rw" = read ]; then echo "$out" | awk -F';' '{ printf "%.0f", $7 / 1024 }'
  else echo "$out" | awk -F';' '{ printf "%.0f", $48 / 1024 }'; fi
}
limit() {  # limit NAME read|write FILE: the best run, recorded in $RESULTS/limits_<fs>.csv
  local name=$1 v=()
  for _ in 1 2 3; do for depth in 1 16; do v+=("$(fio_mibs "$2" "$3" "$depth")"); done; done
  local m; m=$(printf '%s\n' "${v[@]}" | sort -g | tail -1)
  echo "$name,$m,${v[*]},$(load1)" >> "$RESULTS/limits_${FS}.csv"
  echo "$m"
}
echo "limit,mib_s_best,mib_s_runs_depth1_depth16,load1" > "$RESULTS/limits_${FS}.csv"
src_read=$(limit loop_read read "$L1")
dst_write=$(limit loop_write write "$L2")
cp "$WORK/src.img" "$WORK/scratch.img"
fs_read=$(limit backing_read read "$WORK/scratch.img")
fs_write=$(limit backing_write write "$WORK/scratch.img")
rm -f "$WORK/scratch.img"

bytes=$((SIZE_MIB << 20))
ours=$(echo "${TIMES[offload-copy]}" | median)
echo "### ${SIZE_MIB} MiB loop device -> loop device, backing files on $FS ($(host_line), load $(loads))"
echo
echo "What ran: $("$OFFLOAD_COPY" copy "$L1" "$L2" --json --no-progress | grep -o '"backends":{[^}]*}'); ddpt $(ddpt --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1)"
echo
echo "No sync by any tool (caches dropped before each run):"
echo
table "$bytes" offload-copy dd-direct ddpt
echo
echo "Durable: every tool ends with fdatasync of the destination (caches dropped before each run):"
echo
table "$bytes" offload-copy+sync dd-direct+sync ddpt+sync
echo
echo "Physical limit (fio alone, O_DIRECT, 1 MiB, best of 1 and 16 in flight x 3): source loop device read"
echo "$src_read MiB/s, destination loop device write $dst_write MiB/s; the backing $FS file read $fs_read MiB/s,"
echo "write $fs_write MiB/s. Bound for the copy = the slower of the two loop devices:"
awk -v r="$src_read" -v w="$dst_write" -v b="$bytes" -v o="$ours" 'BEGIN {
  s = (r < w) ? r : w; t = b / 1048576 / s
  printf "%.3f s (%.0f MiB/s); offload-copy --no-sync median %.3f s = %.0f%% of the bound'"'"'s speed.\n", t, s, o, 100 * t / o }'
echo
ratio "loop_${FS}_vs_dd_direct" offload-copy dd-direct 1.3
ratio "loop_${FS}_vs_ddpt" offload-copy ddpt 2.5
ratio "loop_${FS}_durable_vs_dd_direct" offload-copy+sync dd-direct+sync 1.3
ratio "loop_${FS}_durable_vs_ddpt" offload-copy+sync ddpt+sync 2.5
