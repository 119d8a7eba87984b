#!/usr/bin/env bash
# Overlapping moves of 1 GiB by a tiny shift (issue 13.4) inside one file and inside one loop
# device, against a non-overlapping 1 GiB copy on the same medium:
#   plain:     offload-copy copy M M 0:1G:1G            (copy_file_range in a file, buffered on a device)
#   shift S:   offload-copy copy M M 0:S:1G             (memmove order), S = 1, 511, 4095 bytes
#   down 1:    offload-copy copy M M 1:0:1G             (the other direction, for information)
# No tool syncs (--no-sync): both end in the page cache (the file) or in the loop device's backing
# file. Target: each shift within 1.25x of plain (ratio shift / plain <= 1.25).
# Before every run the medium gets its reference content back (not timed), and after every run
# the bytes are checked with cmp against the reference: [S, S + 1G) must hold the reference's
# [0, 1G) and [0, S) must be unchanged; a difference ends the script with status 3.
# File runs keep the file in the page cache; loop runs drop the caches first.
# Usage: sudo bench/tiny_shift.sh [DIR]  (DIR holds a 2 GiB file, its reference and a loop
#        device's 2 GiB backing file; default /tmp; loop runs need root, else only the file runs)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_offload_copy
DIR=${1:-/tmp}
WORK=$(mktemp -d "$DIR/offcopy-bench-XXXXXX")
FS=$(df --output=fstype "$DIR" | tail -1 | tr -d ' ')
L=
cleanup() {
  [ -n "$L" ] && losetup -d "$L"
  rm -rf "$WORK"
}
trap cleanup EXIT
G=$((1 << 30))
SIZE=$((2 * G + 4096))
REF=$WORK/ref
head -c "$SIZE" /dev/urandom > "$REF"

restore() { dd if="$REF" of="$1" bs=4M conv=notrunc,fsync status=none "${@:2}"; }
check() {  # check MEDIUM SRC DST LEN
  local m=$1 s=$2 d=$3 n=$4
  cmp -s -n "$n" -i "$s:$d" "$REF" "$m" || wrong_bytes "$m: [$d, $d + $n) is not the reference's [$s, $s + $n)"
  # Everything outside the destination range is as it was.
  [ "$d" -eq 0 ] || cmp -s -n "$d" "$REF" "$m" || wrong_bytes "$m: bytes before [$d, $d + $n) changed"
  cmp -s -i "$((d + n)):$((d + n))" "$REF" "$m" || wrong_bytes "$m: bytes after [$d, $d + $n) changed"
}

declare -A ARGS=([plain]="0:$G:$G" [shift-1]="0:1:$G" [shift-511]="0:511:$G" [shift-4095]="0:4095:$G"
                 [down-1]="1:0:$G")
TOOLS=(plain shift-1 shift-511 shift-4095 down-1)

one_medium() {  # one_medium KIND M: every tool RUNS times, interleaved
  local kind=$1 m=$2
  begin_case "tiny_shift_${kind}_${FS}"
  for ((i = 0; i < RUNS; i++)); do
    for t in "${TOOLS[@]}"; do
      if [ "$kind" = file ]; then restore "$m"; cat "$m" > /dev/null; else restore "$m" oflag=direct; drop_caches; fi
      seconds "$t" "$OFFLOAD_COPY" copy "$m" "$m" "${ARGS[$t]}" --no-sync --no-progress
      IFS=: read -r s d n <<< "${ARGS[$t]}"
      [ "$kind" = loop ] && drop_caches
      check "$m" "$s" "$d" "$n"
    done
  done
  local what
  what=$("$OFFLOAD_COPY" plan "$m" "$m" "${ARGS[shift-1]}" --json | grep -o '"backend":"[^"]*"' | head -1)
  echo "### 1 GiB moves inside one ${kind} on ${FS} ($(host_line), load $(loads)); tiny shifts plan ${what}"
  echo
  CMDS[plain]="copy M M 0:1G:1G (no overlap)"
  CMDS[shift-1]="copy M M 0:1:1G"
  CMDS[shift-511]="copy M M 0:511:1G"
  CMDS[shift-4095]="copy M M 0:4095:1G"
  CMDS[down-1]="copy M M 1:0:1G"
  RATIO_HEADER="time / no-overlap time" table "$G" plain shift-1 shift-511 shift-4095 down-1
  echo
  for t in shift-1 shift-511 shift-4095; do ratio "tiny_${kind}_${FS}_${t}_vs_plain" "$t" plain 1.25 down; done
  ratio "tiny_${kind}_${FS}_down-1_vs_plain" down-1 plain 1.25 down
  echo
  unset 'TIMES[plain]' 'TIMES[shift-1]' 'TIMES[shift-511]' 'TIMES[shift-4095]' 'TIMES[down-1]'
  RUNNO=()
}

F=$WORK/file
cp "$REF" "$F"
one_medium file "$F"
rm -f "$F"

if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
  cp "$REF" "$WORK/disk.img"
  L=$(losetup --find --show "$WORK/disk.img")
  one_medium loop "$L"
else
  echo "SKIP loop device runs: need root and losetup" >&2
fi
