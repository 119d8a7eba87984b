#!/usr/bin/env bash
# Turns the benchmark CSVs in bench/results/ into the figures of docs/benchmarks.md (issue 13.5):
#   docs/img/throughput_<case>.png  MiB/s (median of the runs) of offload-copy and each peer, per case
#                                   (every <case>.csv written by file_copy/clone_xfs/loop_copy/tiny_shift)
#   docs/img/planner_cost.png       make_plan and std::sort CPU time against extent count, log-log,
#                                   with n log2 n through the first point (planner_cost.csv)
#   docs/img/planner_commands.png   commands per extent count for each device's limits (planner_commands.csv)
#   docs/img/guest_cpu.png          guest CPU of a 256 MiB NVMe copy, offload against fallback (guest_cpu.csv)
# Needs gnuplot with the pngcairo terminal (Debian: gnuplot-nox). A missing CSV skips its figure.
# Usage: bench/plot.sh [RESULTS_DIR] [IMG_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${1:-$ROOT/bench/results}
IMG=${2:-$ROOT/docs/img}
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 77; }
mkdir -p "$IMG"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TERM_PNG="set terminal pngcairo size 900,480 font 'DejaVu Sans,10' noenhanced"

# ---- throughput per case -------------------------------------------------------------------------
for csv in "$RESULTS"/file_*.csv "$RESULTS"/loop_*.csv "$RESULTS"/clone_*.csv "$RESULTS"/tiny_shift_*.csv; do
  [ -f "$csv" ] || continue
  case $(basename "$csv") in limits_*) continue ;; esac
  name=$(basename "$csv" .csv)
  # tool, median seconds, MiB/s of the median, in the order the tools first appear.
  awk -F, 'NR > 1 { if (!($2 in n)) order[++k] = $2; t[$2, ++n[$2]] = $4; bytes[$2] = $6 }
    END { for (i = 1; i <= k; i++) { tool = order[i]; m = n[tool]
            for (a = 1; a <= m; a++) v[a] = t[tool, a]
            for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (v[b] < v[a]) { x = v[a]; v[a] = v[b]; v[b] = x }
            med = (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
            printf "\"%s\" %.4f %.1f\n", tool, med, bytes[tool] / 1048576 / med } }' "$csv" > "$TMP/$name.dat"
  [ -s "$TMP/$name.dat" ] || continue
  loads=$(awk -F, 'NR > 1 { if (min == "" || $5 < min) min = $5; if ($5 > max) max = $5 } END { printf "%s-%s", min, max }' "$csv")
  gnuplot <<EOF
$TERM_PNG
set output "$IMG/throughput_$name.png"
set title "$name: MiB/s, median of the runs (load average $loads during the runs)"
set style data histogram
set style fill solid 0.8 border -1
set boxwidth 0.7
set yrange [0:*]
set ylabel "MiB/s"
set xtics rotate by -20
set grid ytics
unset key
plot "$TMP/$name.dat" using 3:xtic(1) lc rgb "#3b6ea8", '' using 0:3:(sprintf("%.0f", \$3)) with labels offset 0,0.7
EOF
  echo "plot.sh: $IMG/throughput_$name.png"
done

# ---- planner cost --------------------------------------------------------------------------------
if [ -f "$RESULTS/planner_cost.csv" ]; then
  awk -F, 'NR > 1 { print $1, $2 * 1000, $3 * 1000 }' "$RESULTS/planner_cost.csv" > "$TMP/cost.dat"
  read -r n0 _ p0 < <(head -1 "$TMP/cost.dat")
  gnuplot <<EOF
$TERM_PNG
set output "$IMG/planner_cost.png"
set title "Planner CPU time against extent count (log-log)"
set logscale xy
set xlabel "extents"
set ylabel "CPU time (ms)"
set grid
set key top left opaque box
f(x) = $p0 * (x * log(x)) / ($n0 * log($n0))
plot "$TMP/cost.dat" using 1:3 with linespoints lw 2 pt 7 title "make_plan", \
     "$TMP/cost.dat" using 1:2 with linespoints lw 2 pt 5 title "std::sort of the same extents", \
     f(x) with lines dt 2 lc rgb "gray" title "n log n through make_plan's first point"
EOF
  echo "plot.sh: $IMG/planner_cost.png"
fi

# ---- commands per extents ------------------------------------------------------------------------
if [ -f "$RESULTS/planner_commands.csv" ]; then
  # limits,shape,extents,commands (limits quoted, without commas)
  tr -d '"' < "$RESULTS/planner_commands.csv" | awk -F, 'NR > 1' > "$TMP/cmd.csv"
  mapfile -t limits < <(cut -d, -f1 "$TMP/cmd.csv" | awk '!seen[$0]++')
  panel() {  # panel SHAPE: the plot command of one panel
    local shape=$1 i=0 parts=()
    for l in "${limits[@]}"; do
      i=$((i + 1))
      awk -F, -v l="$l" -v s="$shape" '$1 == l && $2 == s { print $3, $4 }' "$TMP/cmd.csv" > "$TMP/cmd_${shape}_$i.dat"
      parts+=("\"$TMP/cmd_${shape}_$i.dat\" using 1:2 with linespoints lw 2 lc $i pt $((i + 3)) ps 1.2 title \"$l\"")
    done
    (IFS=,; echo "plot ${parts[*]}")
  }
  gnuplot <<EOF
set terminal pngcairo size 1100,560 font 'DejaVu Sans,9' noenhanced
set output "$IMG/planner_commands.png"
set multiplot layout 1,2 title "Commands the planner packs n extents of 64 KiB into, for each device's limits (log-log)"
set logscale xy
set xlabel "extents"
set ylabel "commands"
set grid
set key top left opaque box
set title "gather: random sources, destinations back to back (compaction)"
$(panel gather)
set title "scatter: random sources, destinations with gaps"
unset key
$(panel scatter)
unset multiplot
EOF
  echo "plot.sh: $IMG/planner_commands.png"
fi

# ---- guest CPU -----------------------------------------------------------------------------------
if [ -f "$RESULTS/guest_cpu.csv" ]; then
  awk -F, 'NR > 1 { printf "\"%s\" %s %s\n", $1, $2, $3 }' "$RESULTS/guest_cpu.csv" > "$TMP/cpu.dat"
  gnuplot <<EOF
$TERM_PNG
set output "$IMG/guest_cpu.png"
set title "Guest CPU time (user + system) of a 256 MiB copy on NVMe (QEMU), offload against fallback"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "CPU seconds"
set yrange [0:*]
set grid ytics
set key top left opaque box
plot "$TMP/cpu.dat" using 2:xtic(1) title "nvme-copy (offload)" lc rgb "#3b6ea8", \
     '' using 3 title "buffered (fallback)" lc rgb "#c0504d"
EOF
  echo "plot.sh: $IMG/guest_cpu.png"
fi
