# Shared helpers of the benchmark scripts (sourced).
# shellcheck shell=bash
#
# Conventions every script follows:
#   - runs are interleaved (one of each tool per round, RUNS rounds) and each run's wall time is kept
#     with the load average at its start, in $RESULTS/<case>.csv (case,tool,run,seconds,load1,bytes);
#   - a ratio is the peer's median time / ours (> 1: we are faster), printed as one line
#     "RATIO <name> <value> target>=<t> PASS|BELOW (medians ours <s> s, peer <s> s)" and appended to
#     $RESULTS/ratios.csv;
#   - wrong bytes end the script with status 3 at once (run-all.sh exits non-zero only for that);
#     anything the host cannot do (no root, no tool) is reported and skipped with status 77.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFLOAD_COPY=${OFFLOAD_COPY:-$ROOT/build/offload-copy}
RUNS=${RUNS:-5}
RESULTS=${RESULTS:-$ROOT/bench/results}
mkdir -p "$RESULTS"

die() { echo "error: $*" >&2; exit 1; }
skip() { echo "SKIP $*" >&2; exit 77; }
wrong_bytes() { echo "WRONG BYTES: $*" >&2; exit 3; }
need_root() { [ "$(id -u)" = 0 ] || skip "$1 needs root"; }
need_tool() { command -v "$1" >/dev/null || skip "$1 is not installed${2:+ ($2)}"; }
need_offload_copy() { [ -x "$OFFLOAD_COPY" ] || die "build first: $OFFLOAD_COPY missing"; }

load1() { cut -d' ' -f1 /proc/loadavg; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# begin_case NAME [BYTES]: starts $RESULTS/NAME.csv for this run of the script (BYTES: what each
# run moves, default 1 GiB; the plots turn times into MiB/s with it).
begin_case() {
  CASE=$1
  CASE_BYTES=${2:-$((1 << 30))}
  echo "case,tool,run,seconds,load1,bytes" > "$RESULTS/$CASE.csv"
}

# seconds TOOL CMD...: runs CMD, appends its wall time to TIMES[TOOL] and to the case's CSV.
declare -A TIMES RUNNO
seconds() {
  local tool=$1; shift
  local load t0 t1 dt
  load=$(load1)
  t0=$EPOCHREALTIME
  "$@" >/dev/null 2>"${WORK:-/tmp}/last.err" || { cat "${WORK:-/tmp}/last.err" >&2; die "$tool failed: $*"; }
  t1=$EPOCHREALTIME
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')
  TIMES[$tool]+="$dt "
  RUNNO[$tool]=$(( ${RUNNO[$tool]:-0} + 1 ))
  echo "$CASE,$tool,${RUNNO[$tool]},$dt,$load,$CASE_BYTES" >> "$RESULTS/$CASE.csv"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END{print (NR%2)? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
best() { tr ' ' '\n' | grep -v '^$' | sort -g | head -1; }

# ratio NAME OURS PEER TARGET [up|down]: prints and records peer-median / ours-median against
# TARGET (a floor). With "down" the ratio is ours / peer and TARGET is a ceiling (e.g. "within 1.25x").
ratio() {
  local name=$1 ours=$2 peer=$3 target=$4 dir=${5:-up}
  local om pm
  om=$(echo "${TIMES[$ours]}" | median)
  pm=$(echo "${TIMES[$peer]}" | median)
  # A ratio measured again replaces the old line (a script run alone updates run-all's table).
  [ -f "$RESULTS/ratios.csv" ] && sed -i "/^${name},/d" "$RESULTS/ratios.csv"
  awk -v n="$name" -v o="$om" -v p="$pm" -v t="$target" -v d="$dir" -v f="$RESULTS/ratios.csv" 'BEGIN{
    if (d == "up") { r = p / o; ok = r >= t; cmp = ">=" } else { r = o / p; ok = r <= t; cmp = "<=" }
    v = ok ? "PASS" : "BELOW"
    printf "RATIO %s %.2f target%s%s %s (medians ours %.3f s, peer %.3f s)\n", n, r, cmp, t, v, o, p
    printf "%s,%.4f,%s%s,%s,%.4f,%.4f\n", n, r, cmp, t, v, o, p >> f }'
}

# table BYTES OURS NAME...: a markdown table of every run, the median and the best, MiB/s of the
# median, and OURS's speed-up against each other row = its time / our time (> 1: we are faster;
# RATIO_HEADER renames that column, e.g. when OURS is a baseline and the rows are variants).
declare -A CMDS
table() {
  local bytes=$1 ours=$2; shift 2
  local ours_med ours_best
  ours_med=$(echo "${TIMES[$ours]}" | median)
  ours_best=$(echo "${TIMES[$ours]}" | best)
  local h=${RATIO_HEADER:-speed-up of ours}
  echo "| command | runs (s) | median (s) | best (s) | MiB/s (median) | $h, median | $h, best |"
  echo "|---|---|---|---|---|---|---|"
  for name in "$ours" "$@"; do
    local med bst
    med=$(echo "${TIMES[$name]}" | median)
    bst=$(echo "${TIMES[$name]}" | best)
    awk -v n="$name" -v on="$ours" -v runs="${TIMES[$name]}" -v t="$med" -v b1="$bst" -v o="$ours_med" \
      -v ob="$ours_best" -v b="$bytes" -v cmd="${CMDS[$name]:-$name}" 'BEGIN{
        r1 = (n == on) ? "—" : sprintf("**%.2f×**", t / o); r2 = (n == on) ? "—" : sprintf("**%.2f×**", b1 / ob);
        f = (t < 0.1) ? "%.4f" : "%.3f"
        printf "| `%s` | %s| " f " | " f " | %.0f | %s | %s |\n", cmd, runs, t, b1, b / 1048576 / t, r1, r2 }'
  done
}

# loads: the load averages seen at the start of the case's runs, min-max.
loads() { awk -F, 'NR > 1 { if (min == "" || $5 < min) min = $5; if ($5 > max) max = $5 } END { printf "%s-%s", min, max }' "$RESULTS/$CASE.csv"; }

# host_line: what ran where, for the tables' headings.
host_line() { echo "$(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"; }

# ---- guest benchmarks (tests/vm rig), host side ------------------------------------------------

# vm_bench BUILD_DIR SCENARIO LOG_NAME [VMRUN_ARGS...]: runs SCENARIO (a guest script) in the QEMU
# guest rig with the build in BUILD_DIR (empty: $OFFCOPY_BUILD, else build/): exports OFFCOPY_BUILD
# and OFFCOPY_BIN, exits 77 without a built offload-copy, sets up the rig's cache
# ($OFFCOPY_VM_CACHE, default BUILD_DIR/vm-cache) and replaces the shell with tests/vm/vmrun.py,
# logging to BUILD_DIR/vm-logs/LOG_NAME.log.
vm_bench() {
    local build=$1 scenario=$2 log_name=$3; shift 3
    local cache
    build=$(cd "${build:-${OFFCOPY_BUILD:-$ROOT/build}}" && pwd)
    export OFFCOPY_BUILD=$build
    export OFFCOPY_BIN=${OFFCOPY_BIN:-$build/offload-copy}
    [[ -x $OFFCOPY_BIN ]] || { echo "no offload-copy at $OFFCOPY_BIN (build first)" >&2; exit 77; }
    cache=${OFFCOPY_VM_CACHE:-$build/vm-cache}
    "$ROOT/tests/vm/setup.sh" "$cache"
    exec /usr/bin/python3 "$ROOT/tests/vm/vmrun.py" --cache "$cache" "$@" \
        --scenario "$scenario" --log "$build/vm-logs/$log_name.log"
}

# bench_to_doc SCENARIO CACHE_DIR TAG HEADING SCRIPTS: runs SCENARIO in the guest rig (needs
# OFFCOPY_BIN; 900 s at most), takes the markdown table it prints between "=== bench-md begin ==="
# and "=== bench-md end ===" and puts it, as "## HEADING" with "Script: SCRIPTS.", between the
# markers <!-- TAG begin --> and <!-- TAG end --> of docs/benchmarks.md (appended when missing).
bench_to_doc() {
    local scenario=$1 cache=$2 tag=$3 heading=$4 scripts=$5
    local log table doc=$ROOT/docs/benchmarks.md
    : "${OFFCOPY_BIN:?set OFFCOPY_BIN to the offload-copy binary}"
    log=$(mktemp "/tmp/$tag.XXXXXX.log")
    OFFCOPY_BIN=$(realpath "$OFFCOPY_BIN") python3 "$ROOT/tests/vm/vmrun.py" --cache "$cache" \
        --scenario "$scenario" --log "$log" --timeout 900
    table=$(sed -n '/=== bench-md begin ===/,/=== bench-md end ===/p' "$log" | sed '1d;$d' |
        sed 's/^\[ *[0-9.]*\] //' | tr -d '\r')
    [[ -n $table ]] || { echo "no table in $log" >&2; exit 1; }
    [[ -f $doc ]] || printf '# Benchmarks\n' >"$doc"
    python3 - "$doc" "$table" "$tag" "$heading" "$scripts" <<'PY'
import sys
path, table, tag, heading, scripts = sys.argv[1:6]
begin, end = f"<!-- {tag} begin -->", f"<!-- {tag} end -->"
section = f"{begin}\n## {heading}\n\nScript: {scripts}.\n\n{table}\n{end}\n"
text = open(path).read()
if begin in text and end in text:
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end) + 1:]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
    echo "updated $doc (log: $log)"
}
