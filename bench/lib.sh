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

# table BYTES REFERENCE NAME...: a markdown table of medians, MiB/s and "ours vs X" ratios
# (ratio = X's time / our time: > 1 means we are faster). REFERENCE names our row.
table() {
  local bytes=$1 ours=$2; shift 2
  local ours_t; ours_t=$(echo "${TIMES[$ours]}" | median)
  echo "| command | runs (s) | median (s) | MiB/s | ${ours} speed-up vs it |"
  echo "|---|---|---|---|---|"
  for name in "$ours" "$@"; do
    local t; t=$(echo "${TIMES[$name]}" | median)
    awk -v n="$name" -v on="$ours" -v runs="${TIMES[$name]}" -v t="$t" -v o="$ours_t" -v b="$bytes" -v cmd="${CMDS[$name]}" \
      'BEGIN{printf "| `%s` | %s| %.3f | %.0f | %s |\n", cmd, runs, t, b/1048576/t, (n==on) ? "—" : sprintf("**%.2f×**", t/o)}'
  done
}
declare -A CMDS
