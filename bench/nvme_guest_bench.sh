#!/bin/bash
# NVMe Copy benchmarks, run inside the QEMU guest by bench/nvme_vm_bench.sh (issue 4 item 10).
# Prints one "RESULT name=value ..." line per measurement; the launcher collects them.
# Emulated device on TCG: only the ratios of one run mean anything.
# vm-nvme: ctrl=0 nsid=1 size=1G lbs=512 mssrl=2048 mcl=16384 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 1500
source "$(dirname "${BASH_SOURCE[0]}")/../tests/vm/lib.sh"
require_offcopy
dev=$NVME0N1
chr=$NG0N1
parts=${OFFCOPY_BENCH_PARTS:-copy256,gather,rate}

# measure NAME CMD...: runs CMD, prints "RESULT NAME wall=S cpu=S rc=N" (guest CPU = user+sys of
# CMD and its children).
measure() {
    local name=$1
    shift
    "$PY" - "$name" "$@" <<'PYEOF'
import os, subprocess, sys, time
name, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL if os.environ.get("QUIET", "1") == "1" else None)
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t0
rc = os.waitstatus_to_exitcode(status)
print(f"RESULT {name} wall={wall:.3f} cpu={ru.ru_utime + ru.ru_stime:.3f} rc={rc}", flush=True)
PYEOF
}

# offcopy_json NAME ARGS...: runs offload-copy ARGS --json and prints "RESULT NAME elapsed=S" (the
# engine's own time, without process start-up and probing).
offcopy_json() {
    local name=$1 rc
    shift
    run_rc rc "$OFFCOPY_BIN" "$@" --json >/dev/null
    [[ $rc == 0 ]] || fail "offload-copy $* exited $rc"
    echo "RESULT $name elapsed=$(json_get "$(report_json)" elapsed_seconds)"
}

note "fill 512 MiB of the source namespace"
dd if=/dev/urandom of="$dev" bs=1M count=512 oflag=direct status=none

if [[ $parts == *rate* ]]; then
    note "1-range commands (4 KiB each, 64 MiB = 16,384 commands): async x16 vs sync, and fio io_uring_cmd"
    for submit in sync async; do
        run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" 0:256M:64M --mode offload --submit $submit --in-flight 16 \
            --max-segments 1 --max-command-blocks 8 --no-sync --json
        r=$(report_json)
        echo "RESULT rate_$submit commands=$(json_get "$r" backends.nvme-copy.commands) elapsed=$(json_get "$r" elapsed_seconds)"
    done
    fio --name=rate --filename="$chr" --ioengine=io_uring_cmd --cmd_type=nvme --rw=randread --bs=4k \
        --iodepth=16 --size=64M --numjobs=1 --output-format=json >/tmp/fio.json 2>/tmp/fio.err ||
        { cat /tmp/fio.err; fail "fio"; }
    echo "RESULT rate_fio iops=$("$PY" -c 'import json; print(json.load(open("/tmp/fio.json"))["jobs"][0]["read"]["iops"])')"
fi
if [[ $parts == *copy256* ]]; then
    note "256 MiB: offload vs our fallback vs dd bs=1M O_DIRECT"
    measure startup_probe "$OFFCOPY_BIN" probe "$dev"
    for rep in 1 2 3; do
        offcopy_json "copy256_offload_engine_r$rep" copy "$dev" "$dev" 0:512M:256M --mode offload --no-progress
        offcopy_json "copy256_fallback_engine_r$rep" copy "$dev" "$dev" 0:512M:256M --mode fallback --no-progress
        measure "copy256_offload_r$rep" "$OFFCOPY_BIN" copy "$dev" "$dev" 0:512M:256M --mode offload --no-progress
        measure "copy256_fallback_r$rep" "$OFFCOPY_BIN" copy "$dev" "$dev" 0:512M:256M --mode fallback --no-progress
        measure "copy256_dd_r$rep" dd if="$dev" of="$dev" bs=1M count=256 seek=512 iflag=direct oflag=direct \
            status=none
    done
    # The copy's own CPU time, devices opened beforehand (no start-up): bench/nvme_copy_cpu.cpp.
    cpu_bin=${OFFCOPY_BENCH_CPU_BIN:-$(dirname "$OFFCOPY_BIN")/bench/bench_nvme_copy_cpu}
    if [[ -x $cpu_bin ]]; then
        "$cpu_bin" "$dev" "$dev" 0:512M:256M offload 3 copy256_inproc
        "$cpu_bin" "$dev" "$dev" 0:512M:256M fallback 3 copy256_inproc
    else
        echo "no $cpu_bin: in-process CPU not measured"
    fi
    expect_eq "$(sum_direct "$dev" 512M 256M)" "$(sum_direct "$dev" 0 256M)" "256 MiB copy"
fi

if [[ $parts == *gather* ]]; then
    note "4,096 scattered 64 KiB extents gathered into one contiguous destination"
    "$PY" -c '
for i in range(4096):
    print(f"{i * 128}K:{(768 << 20) + i * 65536}:64K")' >/tmp/gather.txt
    measure gather_offcopy "$OFFCOPY_BIN" copy "$dev" "$dev" --extents-file /tmp/gather.txt --mode offload \
        --no-progress
    run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" --extents-file /tmp/gather.txt --mode offload --json
    echo "RESULT gather_offcopy_commands n=$(json_get "$(report_json)" backends.nvme-copy.commands)"
    # nvme-cli, at most 128 ranges per call: 32 calls of 128 x 64 KiB.
    "$PY" -c '
blocks = ",".join(["127"] * 128)
for c in range(32):
    slbs = ",".join(str((c * 128 + j) * 256) for j in range(128))
    sdlba = (1 << 20) + c * 128 * 128
    print("nvme copy $1 --sdlba=%d --slbs=%s --blocks=%s --format=0 >/dev/null" % (sdlba, slbs, blocks))
' >/tmp/gather_max.sh
    measure gather_nvme_max bash /tmp/gather_max.sh "$dev"
    # nvme-cli, one call per extent: each call costs the same (process start-up, open, one
    # command), so a sample of the first OFFCOPY_BENCH_LOOP_EXTENTS extents is timed and scaled
    # to 4,096 (the full loop takes hours of emulated CPU: nvme-cli 2.3 starts in ~2.5 s here).
    loop_n=${OFFCOPY_BENCH_LOOP_EXTENTS:-32}
    "$PY" -c '
import sys
for i in range(int(sys.argv[1])):
    print("nvme copy $1 --sdlba=%d --slbs=%d --blocks=127 --format=0 >/dev/null" % ((1 << 20) + i * 128, i * 256))
' "$loop_n" >/tmp/gather_loop.sh
    measure "gather_nvme_loop_sample_$loop_n" bash /tmp/gather_loop.sh "$dev"
    expect_eq "$(sum_direct "$dev" 768M 256M)" "$(sum_direct "$dev" 512M 256M)" "offcopy gather = nvme copy gather"
fi

note "nvme bench: done"
