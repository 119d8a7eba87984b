# Shared helpers of the benchmark scripts (sourced).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFLOAD_COPY=${OFFLOAD_COPY:-$ROOT/build/offload-copy}
RUNS=${RUNS:-5}

die() { echo "error: $*" >&2; exit 1; }

# seconds NAME CMD...: runs CMD, appends its wall time (s) to the list of NAME.
declare -A TIMES
seconds() {
  local name=$1; shift
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; die "$name failed: $*"; }
  local t1=$EPOCHREALTIME
  TIMES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}') "
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{print (NR%2)? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

best() { tr ' ' '\n' | grep -v '^$' | sort -g | head -1; }

# table BYTES OURS NAME...: a markdown table of every run, the median and the best, MiB/s of the
# median, and OURS's speed-up against each other row = its time / our time (> 1: we are faster),
# computed on the medians and on the best runs.
table() {
  local bytes=$1 ours=$2; shift 2
  local ours_med ours_best
  ours_med=$(echo "${TIMES[$ours]}" | median)
  ours_best=$(echo "${TIMES[$ours]}" | best)
  echo "| command | runs (s) | median (s) | best (s) | MiB/s (median) | speed-up of ours, median | speed-up of ours, best |"
  echo "|---|---|---|---|---|---|---|"
  for name in "$ours" "$@"; do
    local med bst
    med=$(echo "${TIMES[$name]}" | median)
    bst=$(echo "${TIMES[$name]}" | best)
    awk -v n="$name" -v on="$ours" -v runs="${TIMES[$name]}" -v t="$med" -v b1="$bst" -v o="$ours_med" \
      -v ob="$ours_best" -v b="$bytes" -v cmd="${CMDS[$name]}" 'BEGIN{
        r1 = (n == on) ? "—" : sprintf("**%.2f×**", t / o); r2 = (n == on) ? "—" : sprintf("**%.2f×**", b1 / ob);
        printf "| `%s` | %s| %.3f | %.3f | %.0f | %s | %s |\n", cmd, runs, t, b1, b / 1048576 / t, r1, r2 }'
  done
}
declare -A CMDS
