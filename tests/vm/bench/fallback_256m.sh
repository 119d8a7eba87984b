#!/bin/bash
# Benchmark (run by bench/vm_fallback_256m.sh, not a CTest test): 256 MiB namespace -> namespace
# on two controllers, offload-copy --mode fallback against dd bs=1M iflag=direct oflag=direct.
# Prints the medians and the ratio dd_time / offcopy_time (> 1: offcopy is faster).
# vm-nvme: ctrl=0 nsid=1 size=256M lbs=512
# vm-nvme: ctrl=1 nsid=1 size=256M lbs=512
# vm-require: OFFCOPY_BIN
# vm-timeout: 1200
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$NVME0N1
dst=$NVME1N1
reps=${OFFCOPY_BENCH_REPS:-3}

note "filling $src (256 MiB)"
fill_random "$src" 0 256M seed-bench

elapsed() { "$PY" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

dd_times=()
oc_times=()
for i in $(seq 1 "$reps"); do
    # Alternate, dd first: the last writer is offload-copy, whose result is checked below.
    t0=$(now)
    dd if="$src" of="$dst" bs=1M iflag=direct oflag=direct status=none
    t1=$(now)
    dd_times+=("$(elapsed "$t0" "$t1")")
    t0=$(now)
    "$OFFCOPY_BIN" copy "$src" "$dst" --mode fallback >/dev/null || fail "offload-copy exited $?"
    t1=$(now)
    oc_times+=("$(elapsed "$t0" "$t1")")
    echo "rep $i: dd ${dd_times[-1]} s, offload-copy ${oc_times[-1]} s"
done
expect_data "pattern $dst 0 256M seed-bench destination after offload-copy"
dd_med=$(median "${dd_times[@]}")
oc_med=$(median "${oc_times[@]}")
ratio=$("$PY" -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$dd_med" "$oc_med")
echo "RESULT bench=vm_fallback_256m reps=$reps dd_s=$dd_med offcopy_s=$oc_med ratio_dd_over_offcopy=$ratio"
