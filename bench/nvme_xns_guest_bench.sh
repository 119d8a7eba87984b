#!/bin/bash
# Cross-namespace NVMe Copy benchmarks (issue 9 item 8), run inside the QEMU 10 guest by
# bench/nvme_xns_bench.sh. Prints one "RESULT name key=value ..." line per measurement.
#   copy256: 256 MiB namespace 1 → namespace 2: offload-copy offloaded vs dd O_DIRECT vs
#            offload-copy --mode fallback; wall time and guest CPU (user + sys) of each process.
#   gather:  4,096 scattered 4 KiB extents, 2,048 from namespace 1 and 2,048 from namespace 3,
#            gathered back to back into namespace 2: offload-copy (one run: --source and K@
#            extents, one gathering part; 2,048 ranges per source = 16 full commands each) vs
#            nvme-cli with the fewest calls that can do it:
#            nvme-cli 2.3's `nvme copy` has no source-namespace option, so `nvme io-passthru` with
#            a range list of 128 format 2h entries per call (MSRC + 1), 32 calls.
# Emulated devices on TCG: only the ratios within one run mean anything.
# vm-nvme: ctrl=0 nsid=1 size=320M lbs=512 mssrl=256 mcl=2048 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=320M lbs=512 mssrl=256 mcl=2048 msrc=127
# vm-nvme: ctrl=0 nsid=3 size=32M lbs=512 mssrl=256 mcl=2048 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 1500
source "$(dirname "${BASH_SOURCE[0]}")/../tests/vm/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../tests/vm/nvme_lib.sh"
require_offcopy
a=$NVME0N1
b=$NVME0N2
c=$NVME0N3
ctrl=$(nvme_ctrl_of "$a")
parts=${OFFCOPY_BENCH_PARTS:-copy256,gather}
runs=${OFFCOPY_BENCH_RUNS:-3}

# measure NAME CMD...: runs CMD, prints "RESULT NAME wall=S cpu=S rc=N" (guest CPU = user + sys of
# CMD and its children; python's own start-up is outside the timed part).
measure() {
    local name=$1
    shift
    "$PY" - "$name" "$@" <<'PYEOF'
import os, subprocess, sys, time
name, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t0
rc = os.waitstatus_to_exitcode(status)
print(f"RESULT {name} wall={wall:.3f} cpu={ru.ru_utime + ru.ru_stime:.3f} rc={rc}", flush=True)
sys.exit(0 if rc == 0 else 1)
PYEOF
}

echo "RESULT load loadavg=$(cut -d' ' -f1 /proc/loadavg)"

if [[ $parts == *copy256* ]]; then
    note "256 MiB namespace 1 → namespace 2: offloaded vs dd O_DIRECT vs fallback, $runs runs each"
    fill_random "$a" 0 256M bench-256
    measure startup_probe "$OFFCOPY_BIN" probe "$b" || fail "probe"
    for rep in $(seq "$runs"); do
        measure "copy256_offload_r$rep" "$OFFCOPY_BIN" copy "$a" "$b" 0:0:256M --mode offload --no-progress ||
            fail "offload run $rep"
        measure "copy256_dd_r$rep" dd if="$a" of="$b" bs=4M count=64 iflag=direct oflag=direct status=none ||
            fail "dd run $rep"
        measure "copy256_fallback_r$rep" "$OFFCOPY_BIN" copy "$a" "$b" 0:0:256M --mode fallback --no-progress ||
            fail "fallback run $rep"
    done
    offcopy copy "$a" "$b" 0:0:256M --mode offload --json
    eval "$(json_vars r "$(report_json)" backends.nvme-copy.commands elapsed_seconds)"
    echo "RESULT copy256_offload_report commands=$r_backends_nvme_copy_commands elapsed=$r_elapsed_seconds"
    expect_data "pattern $b 0 256M bench-256 destination after the runs"
fi

if [[ $parts == *gather* ]]; then
    note "gather: 4,096 x 4 KiB from namespaces 1 and 3 into namespace 2"
    fill_random "$a" 0 16M bench-gather-1
    fill_random "$c" 0 16M bench-gather-3
    # Extent k of a source: its blocks 16k..16k+7 (every other 4 KiB), landing at 8 k blocks of the
    # destination area: namespace 1's at 256 MiB, namespace 3's right after (256 MiB + 8 MiB).
    "$PY" -c '
import sys
base = int(sys.argv[1])
for k in range(2048):
    print(f"{k * 8192}:{base + k * 4096}:4096")' $((256 << 20)) >/tmp/gather1.txt
    "$PY" -c '
import sys
base = int(sys.argv[1])
for k in range(2048):
    print(f"{k * 8192}:{base + k * 4096}:4096")' $(((256 + 8) << 20)) >/tmp/gather3.txt
    # One run: namespace 1 is the positional source (0@), namespace 3 the first --source (1@).
    { sed 's/^/0@/' /tmp/gather1.txt; sed 's/^/1@/' /tmp/gather3.txt; } >/tmp/gather.txt
    cat >/tmp/gather_offcopy.sh <<EOF
set -e
"$OFFCOPY_BIN" copy "$a" "$b" --source "$c" --extents-file /tmp/gather.txt --mode offload --no-progress
EOF
    # nvme-cli: 32 calls of 128 ranges, into a second destination area (288 MiB) for comparison;
    # the range lists are built beforehand (not timed), CDFE enabled beforehand (not timed).
    hbs_put_byte "$ctrl" 4 0x04
    : >/tmp/gather_nvme.sh
    for src in 1 3; do
        for call in $(seq 0 15); do
            ranges=()
            for j in $(seq 0 127); do
                ranges+=("$src:$(((call * 128 + j) * 16)):8")
            done
            copy_ranges "/tmp/g${src}_$call.bin" "${ranges[@]}"
            sdlba=$((((288 << 20) / 512) + (src == 3 ? 16384 : 0) + call * 1024))
            echo "nvme io-passthru $b -n 2 -o 0x19 -w -l 4096 -i /tmp/g${src}_$call.bin --cdw10=$sdlba --cdw12=$((127 | (2 << 8))) >/dev/null" >>/tmp/gather_nvme.sh
        done
    done
    for rep in $(seq "$runs"); do
        measure "gather_offcopy_r$rep" bash /tmp/gather_offcopy.sh || fail "offcopy gather run $rep"
        measure "gather_nvme_r$rep" bash -e /tmp/gather_nvme.sh || fail "nvme-cli gather run $rep"
    done
    offcopy copy "$a" "$b" --source "$c" --extents-file /tmp/gather.txt --mode offload --json
    n=$(json_get "$(report_json)" backends.nvme-copy.commands)
    echo "RESULT gather_offcopy_commands n=$n calls=1"
    echo "RESULT gather_nvme_commands n=32 calls=32"
    expect_data "same $b 256M $b 288M 16M offload-copy's gather = nvme-cli's gather"
    checks=()
    for k in 0 1 2047; do
        checks+=("same $b $(((256 << 20) + k * 4096)) $a $((k * 8192)) 4K namespace 1 extent $k")
        checks+=("same $b $(((264 << 20) + k * 4096)) $c $((k * 8192)) 4K namespace 3 extent $k")
    done
    expect_data "${checks[@]}"
fi
echo "RESULT load_end loadavg=$(cut -d' ' -f1 /proc/loadavg)"
note "nvme_xns bench: done"
