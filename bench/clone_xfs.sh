#!/usr/bin/env bash
# 1 GiB whole-file copy on XFS with reflink (mkfs.xfs -m reflink=1 on a loop device): a clone
# (issue 13.1). `offload-copy copy A B --no-sync` vs `cp --reflink=always A B` (neither syncs), and
# durable: `offload-copy copy A B` vs `cp --reflink=always A B && sync -d B`.
# Target: ours within 2x of cp's time (ratio cp / ours >= 0.5), and the report says the bytes were
# cloned (cloned_bytes = the file size), checked every run with the bytes (cmp): a difference or a
# copy that was not a clone ends the script with status 3.
# Usage: sudo bench/clone_xfs.sh [DIR]  (DIR holds the 2 GiB sparse image; default /tmp)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_root "clone_xfs.sh (losetup, mount)"
need_tool mkfs.xfs "apt-get install xfsprogs"
need_offload_copy
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
SIZE_MIB=${SIZE_MIB:-1024}
L= MNT=$WORK/mnt
cleanup() {
  mountpoint -q "$MNT" && umount "$MNT"
  [ -n "$L" ] && losetup -d "$L"
  rm -rf "$WORK"
}
trap cleanup EXIT
truncate -s $(( (SIZE_MIB * 2 + 512) << 20 )) "$WORK/xfs.img"
L=$(losetup -f --show "$WORK/xfs.img")
mkfs.xfs -q -f -m reflink=1 "$L"
mkdir -p "$MNT"
mount -t xfs "$L" "$MNT"
begin_case clone_xfs $((SIZE_MIB << 20))
A=$MNT/a B=$MNT/b
head -c $((SIZE_MIB << 20)) /dev/urandom > "$A"
sync

CMDS[offload-copy]="offload-copy copy A B --no-sync"
CMDS[cp-always]="cp --reflink=always A B"
CMDS[offload-copy+sync]="offload-copy copy A B"
CMDS[cp-always+sync]="cp --reflink=always A B && sync -d B"

fresh() { rm -f "$B"; sync; }
cp_sync() { cp --reflink=always "$A" "$B" && sync -d "$B"; }
ours() {  # ours [ARGS]: copy, then check it was a clone of every byte
  "$OFFLOAD_COPY" copy "$A" "$B" --json --no-progress "$@" > "$WORK/report.json"
}
check() {
  cmp -s "$A" "$B" || wrong_bytes "offload-copy: $B differs from $A"
  grep -q "\"cloned_bytes\":$((SIZE_MIB << 20))" "$WORK/report.json" ||
    wrong_bytes "offload-copy did not clone: $(cat "$WORK/report.json")"
}
for ((i = 0; i < RUNS; i++)); do
  fresh; seconds offload-copy ours --no-sync; check
  fresh; seconds cp-always cp --reflink=always "$A" "$B"
  fresh; seconds offload-copy+sync ours; check
  fresh; seconds cp-always+sync cp_sync
done
backend=$(grep -o '"backends":{[^}]*}' "$WORK/report.json")

echo "### ${SIZE_MIB} MiB whole-file copy on XFS (reflink=1, on a loop device; $(host_line), load $(loads))"
echo
echo "What ran: $backend"
echo
echo "No sync by either tool:"
echo
table $((SIZE_MIB << 20)) offload-copy cp-always
echo
echo "Durable (both end with fdatasync of the destination):"
echo
table $((SIZE_MIB << 20)) offload-copy+sync cp-always+sync
echo
ratio clone_xfs_vs_cp_reflink_always offload-copy cp-always 0.5
ratio clone_xfs_durable_vs_cp_reflink_always_sync offload-copy+sync cp-always+sync 0.5
