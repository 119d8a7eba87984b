#!/bin/bash
# offload-copy between two NVMe namespaces of one controller, QEMU's default Copy limits: QEMU 10
# offers formats 2h/3h, so auto mode offloads (nvme-copy carries every byte), the whole device
# too, and --mode offload succeeds. (QEMU 7.2 had no cross-namespace Copy: the fallback with its
# reason is what tests/unit/nvme checks for OCFS 0x3, and nvme_xns_refuse for incompatible pairs.)
# vm-nvme: ctrl=0 nsid=1 size=32M lbs=512
# vm-nvme: ctrl=0 nsid=2 size=32M lbs=512
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_pair
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$NVME0N1
dst=$NVME0N2

fill_random "$src" 0 32M seed-ns2ns
expect_data "pattern $src 0 32M seed-ns2ns source after fill"

note "auto mode, 3 extents, 8 MiB"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:0:4M 8M:16M:1M 20M:24M:3M --verify --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((8 << 20))
expect_eq "$(backend_bytes "$report" nvme-copy)" $((8 << 20)) "nvme-copy bytes"
expect_data "same $dst 0 $src 0 4M extent 0:0:4M" "same $dst 16M $src 8M 1M extent 8M:16M:1M" \
    "same $dst 24M $src 20M 3M extent 20M:24M:3M" "zero $dst 4M 12M gap 4M..16M untouched" \
    "zero $dst 17M 7M gap 17M..24M untouched" "zero $dst 27M 5M tail 27M..32M untouched"

note "whole device (no extent): 32 MiB"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" --verify --json
expect_eq "$rc" 0 "exit status"
check_copy_report "$(report_json)" $((32 << 20))
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((32 << 20)) "nvme-copy bytes"
expect_data "pattern $dst 0 32M seed-ns2ns whole namespace"

note "--mode offload across namespaces: carried by nvme-copy"
fill_random "$src" 28M 4M seed-ns2ns-2
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 28M:28M:4M --mode offload --json
expect_eq "$rc" 0 "exit status of --mode offload"
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((4 << 20)) "nvme-copy bytes"
expect_data "pattern $dst 0 28M seed-ns2ns destination head unchanged" \
    "pattern $dst 28M 4M seed-ns2ns-2 destination tail copied"
note "copy_ns_to_ns: ok"
