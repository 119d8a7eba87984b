#!/bin/bash
# Cross-namespace NVMe Copy on QEMU 10 (formats 2h/3h): probe shows OCFS and CDFE; offload-copy
# enables CDFE by read-modify-write of Host Behavior Support (no other byte changes); copies in
# both directions between namespaces with different MSSRL/MCL/MSRC take the fewest commands the
# source's MSSRL and the destination's MCL/MSRC allow, without 0x183; a controller reset between
# two copies clears CDFE and the next copy sets it again; CDFE cleared by someone else during a
# copy makes the controller answer Invalid Field and the copy sets it again and carries on; PI
# namespaces copy across with format 2h (16-bit guard) and 3h (64-bit guard) and read back with
# the kernel's PI checks.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=1024 msrc=15 read_error_lba=120000
# vm-nvme: ctrl=0 nsid=2 size=64M lbs=512 mssrl=64 mcl=512 msrc=7 write_error_lba=125000
# vm-nvme: ctrl=0 nsid=3 size=16M lbs=4096 mssrl=128 mcl=1024 msrc=15
# vm-nvme: ctrl=0 nsid=4 size=8M lbs=512 ms=8 mset=0 pi=1 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=5 size=8M lbs=512 ms=8 mset=0 pi=1 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=6 size=8M lbs=512 ms=16 mset=0 pi=1 pif=2 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=7 size=8M lbs=512 ms=16 mset=0 pi=1 pif=2 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=1 nsid=1 size=16M lbs=512 mssrl=128 mcl=1024 msrc=15
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_xns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy
a=$NVME0N1
b=$NVME0N2
ctrl=$(nvme_ctrl_of "$a")

note "probe: OCFS 0xf (formats 0h-3h), CDFE as Linux left it, one controller behind both"
# Start from CDFE 0 whatever ran before in this boot, and plant a byte offcopy must not touch.
hbs_put_byte "$ctrl" 4 0
hbs_put_byte "$ctrl" 100 0x5a
eval "$(json_vars p "$("$OFFCOPY_BIN" probe "$b" --json)" offload.0.backend offload.0.details.ocfs \
    offload.0.details.cdfe offload.0.details.controller offload.0.details.subsystem_controllers)"
expect_eq "$p_offload_0_backend" nvme-copy "first offload mechanism"
expect_eq "$p_offload_0_details_ocfs" 0xf "OCFS"
expect_eq "$p_offload_0_details_cdfe" "0x0 (enabled: none)" "CDFE before any cross-namespace copy"
expect_eq "$p_offload_0_details_subsystem_controllers" 1 "controllers in the subsystem"
expect_eq "$(nvme_probe_get "$a" details.controller)" "$p_offload_0_details_controller" "controller (SN, CNTLID) of both"

note "namespace 1 → 2, 16 MiB, --mode offload: source MSSRL 128, destination MCL 512 / MSRC 7"
fill_random "$a" 0 16M xns-1
offcopy copy "$a" "$b" 0:4M:16M --mode offload --verify --json
eval "$(json_vars r "$(report_json)" bytes_copied backends.nvme-copy.bytes backends.nvme-copy.commands \
    backends.nvme-copy.retries verified)"
expect_eq "$r_backends_nvme_copy_bytes" $((16 << 20)) "nvme-copy bytes"
expect_eq "$r_backends_nvme_copy_commands" "$(nvme_min_commands 512 7 128 512 0:4M:16M)" "commands (greedy minimum)"
expect_eq "$r_backends_nvme_copy_retries" 0 "retries (no 0x183)"
expect_eq "$r_verified" true "verified"
expect_eq "$(hbs_bytes "$ctrl" 4 5 2 100)" "4 0 1 90" "Host Behavior Support after: CDFE 0x0004, LBAFEE 1, byte 100 kept"
expect_data "pattern $b 4M 16M xns-1 destination" "zero $b 0 4M before it" "zero $b 20M 4M after it"

note "namespace 2 → 1, 8 MiB from scattered sources: source MSSRL 64, destination MCL 1024 / MSRC 15"
extents=(0:32M:2M 4M:34M:2M 8M:36M:4M)
offcopy copy "$b" "$a" "${extents[@]}" --mode offload --json
eval "$(json_vars r "$(report_json)" backends.nvme-copy.bytes backends.nvme-copy.commands backends.nvme-copy.retries)"
expect_eq "$r_backends_nvme_copy_bytes" $((8 << 20)) "nvme-copy bytes"
expect_eq "$r_backends_nvme_copy_commands" "$(nvme_min_commands 512 15 64 1024 "${extents[@]}")" "commands (greedy minimum)"
expect_eq "$r_backends_nvme_copy_retries" 0 "retries"
expect_data "same $a 32M $b 0 2M extent 1" "same $a 34M $b 4M 2M extent 2" "same $a 36M $b 8M 4M extent 3"

note "controller reset between two copies: Linux rewrites Host Behavior Support, CDFE back to 0"
nvme reset "$ctrl" || fail "nvme reset $ctrl"
nvme_wait_live "$ctrl"
expect_eq "$(hbs_bytes "$ctrl" 4 2 100)" "0 1 0" "after the reset: CDFE 0, LBAFEE 1, byte 100 gone (the kernel wrote its own)"
fill_random "$a" 16M 4M xns-2
offcopy copy "$a" "$b" 16M:24M:4M --mode offload --verify --json
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((4 << 20)) "nvme-copy bytes after the reset"
expect_eq "$(hbs_bytes "$ctrl" 4)" 4 "CDFE set again"

note "CDFE cleared by another process in the middle of a copy: Invalid Field, set again, resent"
# 4,096 synchronous commands of 4 blocks: seconds of copying; the other process waits until the
# copy has enabled CDFE, then clears it once.
hbs_put_byte "$ctrl" 4 0
fill_random "$a" 24M 8M xns-3
(
    for _ in $(seq 2000); do
        [[ $(hbs_bytes "$ctrl" 4) == 4 ]] && break
    done
    hbs_put_byte "$ctrl" 4 0
    echo "    (CDFE cleared by another process at $(cut -d' ' -f1 /proc/uptime)s)"
) &
clearer=$!
offcopy copy "$a" "$b" 24M:32M:8M --mode offload --submit sync --max-command-blocks 4 --json
wait "$clearer"
echo "    (copy ended at $(cut -d' ' -f1 /proc/uptime)s)"
eval "$(json_vars r "$(report_json)" backends.nvme-copy.bytes backends.nvme-copy.commands)"
expect_eq "$r_backends_nvme_copy_bytes" $((8 << 20)) "nvme-copy bytes"
expect_eq "$r_backends_nvme_copy_commands" 4096 "commands (the resent one is the same command)"
expect_eq "$(hbs_bytes "$ctrl" 4)" 4 "CDFE set again by the copy after the other process cleared it"
expect_data "pattern $b 32M 8M xns-3 destination"

note "protection information: Type 1 16-bit guard (format 2h), Type 1 64-bit guard (format 3h)"
fill_random "$NVME0N4" 0 2M xns-pi16
offcopy copy "$NVME0N4" "$NVME0N5" 0:1M:2M --mode offload --verify --json
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((2 << 20)) "nvme-copy bytes, 16-bit guard"
fill_random "$NVME0N6" 0 2M xns-pi64
offcopy copy "$NVME0N6" "$NVME0N7" 0:1M:2M --mode offload --verify --json
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((2 << 20)) "nvme-copy bytes, 64-bit guard"
expect_eq "$(hbs_bytes "$ctrl" 4)" 12 "CDFE 0x000c: formats 2h and 3h enabled"
# Reads through the block layer check the guard and the Type 1 reference tag of every block.
expect_data "pattern $NVME0N5 1M 2M xns-pi16 16-bit guard destination (PI checked on read)" \
    "pattern $NVME0N7 1M 2M xns-pi64 64-bit guard destination (PI checked on read)"
note "nvme_xns_copy: ok"
