#!/usr/bin/env bash
# 1 GiB regular file -> regular file on one file system, source in the page cache (issue 13.1):
#   page cache: `offload-copy copy A B --no-sync` vs `cp --reflink=never A B` (cp's own read/write
#               loop; plain `cp` is timed too, for information: it uses copy_file_range as we do);
#   durable:    `offload-copy copy A B` (fdatasync at the end) vs `cp --reflink=never A B && sync -d B`.
# Targets: both ratios >= 1.0. Runs interleaved, RUNS rounds (default 5), the destination removed
# before each run; every offload-copy result is compared with the source (cmp): a difference ends
# the script with status 3.
# Usage: bench/file_copy.sh [DIR]  (DIR on the file system to test; default /tmp; needs 2 GiB free)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_offload_copy
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SIZE_MIB=${SIZE_MIB:-1024}
FS=$(df --output=fstype "$DIR" | tail -1 | tr -d ' ')
A=$WORK/a B=$WORK/b
begin_case "file_${FS}" $((SIZE_MIB << 20))

head -c $((SIZE_MIB << 20)) /dev/urandom > "$A"
sync
cat "$A" > /dev/null  # warm: the source stays cached for every run

CMDS[offload-copy]="offload-copy copy A B --no-sync"
CMDS[cp-never]="cp --reflink=never A B"
CMDS[cp]="cp A B"
CMDS[offload-copy+sync]="offload-copy copy A B"
CMDS[cp-never+sync]="cp --reflink=never A B && sync -d B"

fresh() { rm -f "$B"; sync; }
cp_sync() { cp --reflink=never "$A" "$B" && sync -d "$B"; }
check() { cmp -s "$A" "$B" || wrong_bytes "offload-copy: $B differs from $A"; }
for ((i = 0; i < RUNS; i++)); do
  fresh; seconds offload-copy "$OFFLOAD_COPY" copy "$A" "$B" --no-sync --no-progress; check
  fresh; seconds cp-never cp --reflink=never "$A" "$B"
  fresh; seconds cp cp "$A" "$B"
  fresh; seconds offload-copy+sync "$OFFLOAD_COPY" copy "$A" "$B" --no-progress; check
  fresh; seconds cp-never+sync cp_sync
done
fresh
backend=$("$OFFLOAD_COPY" copy "$A" "$B" --json --no-progress | grep -o '"backends":{[^}]*}' || true)
rm -f "$B"

echo "### ${SIZE_MIB} MiB file -> file on $FS, source page-cache warm ($(host_line), load $(loads))"
echo
echo "What ran: $backend"
echo
echo "Page cache (no tool syncs):"
echo
table $((SIZE_MIB << 20)) offload-copy cp-never cp
echo
echo "Durable (every tool ends with fdatasync of the destination):"
echo
table $((SIZE_MIB << 20)) offload-copy+sync cp-never+sync
echo
ratio "file_${FS}_pagecache_vs_cp_reflink_never" offload-copy cp-never 1.0
ratio "file_${FS}_durable_vs_cp_reflink_never_sync" offload-copy+sync cp-never+sync 1.0
