#!/bin/bash
# The main job (scripts/main-job.sh): a 64 MiB copy from one NVMe namespace to another of the same
# QEMU 10 controller, offloaded as cross-namespace NVMe Copy (format 2h, after offload-copy enabled
# it in Host Behavior Support), reported as text and as JSON (nvme-copy, its commands: the fewest
# the limits allow), verified by reading both sides back with O_DIRECT; then a copy to a namespace
# with 4 KiB blocks, which no NVMe Copy can do: the fallback copies it and the report says why.
# vm-nvme: ctrl=0 nsid=1 size=128M lbs=512 mssrl=128 mcl=1024 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=128M lbs=512 mssrl=128 mcl=1024 msrc=127
# vm-nvme: ctrl=0 nsid=3 size=64M lbs=4096 mssrl=32 mcl=256 msrc=15
# vm-require: OFFCOPY_BIN
# vm-timeout: 420
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy
src=$NVME0N1
dst=$NVME0N2
other=$NVME0N3

note "filling $src [0, 64M) with random data"
fill_random "$src" 0 64M seed-demo-1
expect_data "pattern $src 0 64M seed-demo-1 source [0, 64M)" "zero $dst 0 64M destination before"

note "offload-copy probe $dst (QEMU 10: OCFS 0xf offers the cross-namespace formats 2h/3h)"
"$OFFCOPY_BIN" probe "$dst" | grep -E "nvme-copy|ocfs|cdfe|mssrl|mcl|msrc|controller" || true

note "offload-copy copy $src $dst 0:0:64M --verify   (namespace 1 → namespace 2, same controller)"
rc=0
"$OFFCOPY_BIN" copy "$src" "$dst" 0:0:64M --verify --no-progress || rc=$?
expect_eq "$rc" 0 "exit status"
expect_data "pattern $dst 0 64M seed-demo-1 destination after the copy"

note "new data, then offload-copy copy $src $dst 0:64M:64M --mode offload --verify --json"
fill_random "$src" 0 64M seed-demo-2
rc=0
"$OFFCOPY_BIN" copy "$src" "$dst" 0:64M:64M --mode offload --verify --json >/tmp/report.json || rc=$?
cat /tmp/report.json
echo
expect_eq "$rc" 0 "exit status"
check_copy_report "$(cat /tmp/report.json)" $((64 << 20))
eval "$(json_vars r "$(cat /tmp/report.json)" backends.nvme-copy.bytes backends.nvme-copy.commands \
    backends.nvme-copy.retries verified)"
expect_eq "$r_backends_nvme_copy_bytes" $((64 << 20)) "nvme-copy bytes"
# 64 MiB of 512-byte blocks, ranges of MSSRL 128, commands of MCL 1024 blocks: 128 at the least.
expect_eq "$r_backends_nvme_copy_commands" "$(nvme_min_commands 512 127 128 1024 0:64M:64M)" "nvme-copy commands (greedy minimum)"
expect_eq "$r_backends_nvme_copy_retries" 0 "retries"
expect_eq "$r_verified" true "verified"
expect_data "pattern $dst 64M 64M seed-demo-2 destination after the second copy"

note "offload-copy copy $src $other 0:0:32M --verify   (4 KiB blocks: no NVMe Copy can bridge that)"
rc=0
"$OFFCOPY_BIN" copy "$src" "$other" 0:0:32M --verify --no-progress || rc=$?
expect_eq "$rc" 0 "exit status"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$other" 0:32M:32M --verify --json
expect_eq "$rc" 0 "exit status"
eval "$(json_vars f "$(report_json)" fallback_reason backends.nvme-copy.bytes verified)"
[[ $f_fallback_reason == *"incompatible formats (namespace 1 vs 3: LBA data size 512 B vs 4096 B)"* ]] ||
    fail "fallback reason: $f_fallback_reason"
echo "ok: fallback reason: $f_fallback_reason"
expect_eq "$f_backends_nvme_copy_bytes" "" "nothing offloaded"
expect_eq "$f_verified" true "verified"
expect_data "pattern $other 0 32M seed-demo-2 4 KiB namespace, first copy" \
    "pattern $other 32M 32M seed-demo-2 4 KiB namespace, second copy"
note "sha256 (O_DIRECT): source $(sum_direct "$src" 0 64M), destination $(sum_direct "$dst" 64M 64M)"
note "demo: ok"
