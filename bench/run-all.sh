#!/usr/bin/env bash
# Every host benchmark of issue 13, from one entry point:
#   planner      build/bench/bench_planner (10k -> 10M extents, commands per device limits)
#   file_copy    1 GiB file -> file on /tmp (the host's disk file system) and on /dev/shm (tmpfs)
#   clone_xfs    1 GiB whole-file clone on XFS with reflink (root)
#   loop_copy    1 GiB loop device -> loop device, backing files on /tmp (root), with physical limits
#   tiny_shift   1 GiB moves by 1, 511, 4095 bytes in a file and in a loop device (loop part: root)
# then bench/plot.sh (docs/img/*.png from the CSVs). Each script prints its markdown tables; every
# ratio is printed as "RATIO name value target PASS|BELOW" and collected at the end.
#
# Exit status: 3 when some copy produced wrong bytes; otherwise 0 -- times on a shared host are
# noisy, so a ratio below its target is reported (BELOW), not a failure. A part the host cannot run
# (no root, a missing tool) is reported as skipped.
#
# Usage: sudo bench/run-all.sh [PART...]   (default: all parts; RUNS=N rounds per part, default 5)
# Results: bench/results/*.csv (override with RESULTS=DIR), the tables in bench/results/report.md.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$ROOT/bench/results}
export RUNS=${RUNS:-5}
mkdir -p "$RESULTS"
DISK_DIR=${DISK_DIR:-/tmp}
SHM_DIR=${SHM_DIR:-/dev/shm}
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(planner file_copy clone_xfs loop_copy tiny_shift)
REPORT=$RESULTS/report.md
echo "name,value,target,verdict,ours_median_s,peer_median_s" > "$RESULTS/ratios.csv"
{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) CPUs, RUNS=$RUNS"
  echo
} > "$REPORT"

[ -x "$ROOT/build/offload-copy" ] || { echo "run-all: build first (cmake --preset dev && cmake --build --preset dev)" >&2; exit 1; }
wrong=0
declare -a summary
run_part() {  # run_part LABEL CMD...: runs one script, its output to the terminal and the report
  local label=$1; shift
  echo "==== $label" | tee -a "$REPORT"
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  echo "$out" | tee -a "$REPORT"
  echo >> "$REPORT"
  case $rc in
    0) summary+=("$label: done") ;;
    3) summary+=("$label: WRONG BYTES"); wrong=1 ;;
    77) summary+=("$label: skipped ($(echo "$out" | grep -m1 '^SKIP' || echo 'see above'))") ;;
    *) summary+=("$label: failed (status $rc)") ;;
  esac
}

for part in "${PARTS[@]}"; do
  case $part in
    planner)
      if [ -x "$ROOT/build/bench/bench_planner" ]; then
        run_part planner bash -c "'$ROOT/build/bench/bench_planner' --csv '$RESULTS' 2>/dev/null |
          tee /dev/stderr | grep '^RATIO' | awk '{ split(\$4, t, /[<>]=/); printf \"%s,%s,%s,%s,,\\n\", \$2, \$3, \$4, \$5 }' >> '$RESULTS/ratios.csv'"
      else
        summary+=("planner: skipped (build/bench/bench_planner missing: OFFCOPY_BUILD_BENCH=ON)")
      fi ;;
    file_copy)
      run_part "file_copy $DISK_DIR" "$ROOT/bench/file_copy.sh" "$DISK_DIR"
      run_part "file_copy $SHM_DIR" "$ROOT/bench/file_copy.sh" "$SHM_DIR" ;;
    clone_xfs) run_part clone_xfs "$ROOT/bench/clone_xfs.sh" "$DISK_DIR" ;;
    loop_copy) run_part "loop_copy $DISK_DIR" "$ROOT/bench/loop_copy.sh" "$DISK_DIR" ;;
    tiny_shift) run_part "tiny_shift $DISK_DIR" "$ROOT/bench/tiny_shift.sh" "$DISK_DIR" ;;
    *) echo "run-all: unknown part $part" >&2; exit 2 ;;
  esac
done

if [ -x "$ROOT/bench/plot.sh" ] && command -v gnuplot >/dev/null; then
  "$ROOT/bench/plot.sh" "$RESULTS" "$ROOT/docs/img" >/dev/null 2>&1 && summary+=("plots: docs/img/*.png regenerated")
else
  summary+=("plots: skipped (gnuplot missing: apt-get install gnuplot-nox)")
fi

{
  echo "==== summary"
  printf '%s\n' "${summary[@]}"
  echo
  echo "Ratios (value, target, verdict):"
  awk -F, 'NR > 1 { printf "  %-52s %6s  %-9s %s\n", $1, $2, $3, $4 }' "$RESULTS/ratios.csv"
} | tee -a "$REPORT"
exit $((wrong ? 3 : 0))
