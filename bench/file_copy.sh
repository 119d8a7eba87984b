#!/usr/bin/env bash
# 1 GiB regular file -> regular file, source in the page cache: offload-copy vs cp vs dd bs=1M.
#
# Two comparisons, each with every tool doing the same amount of work:
#   page cache: nobody syncs (ours with --no-sync), the copy ends in the destination's page cache;
#   durable:    every tool ends with fdatasync of the destination (ours by default,
#               `cp` followed by `sync --data`, dd with conv=fdatasync).
# Runs are interleaved (RUNS rounds, default 5); the median and the best run are reported, with
# ratios on both (the best run is the one least disturbed by other load on a shared host).
# Usage: bench/file_copy.sh [DIR]  (DIR holds the two files; default /tmp; needs 2 GiB free)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -x "$OFFLOAD_COPY" ] || die "build first: $OFFLOAD_COPY missing"
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SIZE_MIB=${SIZE_MIB:-1024}
A=$WORK/a B=$WORK/b

head -c $((SIZE_MIB << 20)) /dev/urandom > "$A"
sync
cat "$A" > /dev/null  # warm: the source stays cached for every run

CMDS[offload-copy]="offload-copy copy A B --no-sync"
CMDS[cp]="cp A B"
CMDS[dd]="dd if=A of=B bs=1M"
CMDS[offload-copy+sync]="offload-copy copy A B"
CMDS[cp+sync]="cp A B && sync --data B"
CMDS[dd+sync]="dd if=A of=B bs=1M conv=fdatasync"

fresh() { rm -f "$B"; sync; }
cp_sync() { cp "$A" "$B" && sync --data "$B"; }
for ((i = 0; i < RUNS; i++)); do
  fresh; seconds offload-copy "$OFFLOAD_COPY" copy "$A" "$B" --no-sync --no-progress
  fresh; seconds cp cp "$A" "$B"
  fresh; seconds dd dd if="$A" of="$B" bs=1M
  fresh; seconds offload-copy+sync "$OFFLOAD_COPY" copy "$A" "$B" --no-progress
  cmp "$A" "$B" || die "offload-copy produced a different file"
  fresh; seconds cp+sync cp_sync
  fresh; seconds dd+sync dd if="$A" of="$B" bs=1M conv=fdatasync
done
fresh

echo "### ${SIZE_MIB} MiB file -> file, source page-cache warm ($(uname -r), $(nproc) CPUs, load average $(cut -d" " -f1-3 /proc/loadavg), $(df --output=fstype "$DIR" | tail -1) on $(df --output=source "$DIR" | tail -1))"
echo
echo "Which backend ran: $("$OFFLOAD_COPY" copy "$A" "$B" --json --no-progress | grep -o '"planned_backend":"[^"]*"')"
rm -f "$B"
echo
echo "Page cache (no tool syncs):"
echo
table $((SIZE_MIB << 20)) offload-copy cp dd
echo
echo "Durable (every tool ends with fdatasync of the destination):"
echo
table $((SIZE_MIB << 20)) offload-copy+sync cp+sync dd+sync
