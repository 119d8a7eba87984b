#!/bin/bash
# Pairs a cross-namespace Copy must not be tried on, decided before anything is sent (QEMU 10
# answers 0x185 for some and has crash bugs for others): different LBA data size, metadata
# size, PI format, and a namespace of another controller. --mode auto copies through the fallback
# and says why; --mode offload exits 3 and writes nothing.
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

# refused SRC DST REASON [OFFLOAD_REASON]: --mode offload exits 3 naming OFFLOAD_REASON (default
# REASON) and leaves the destination's first MiB zero; --mode auto copies it through the fallback
# with REASON as fallback_reason.
refused() {
    local src=$1 dst=$2 why=$3 offload_why=${4:-$3}
    # Every refusal here is one only --mode offload makes (a fallback copies it): exit 3, also for
    # different logical block sizes, which the planner refuses before any backend is asked (8.6).
    run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:0:1M --mode offload --json
    expect_eq "$rc" 3 "$src → $dst --mode offload: exit status"
    expect_eq "$(json_get "$(report_json)" outcome)" offload-impossible "$src → $dst --mode offload: outcome"
    [[ $(json_get "$(report_json)" error.message) == *"$offload_why"* ]] || fail "error message does not say: $offload_why"
    expect_data "zero $dst 0 1M nothing written"
    run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:0:1M --verify --json
    expect_eq "$rc" 0 "$src → $dst auto: exit status"
    eval "$(json_vars r "$(report_json)" fallback_reason verified backends.nvme-copy.bytes)"
    [[ $r_fallback_reason == *"$why"* ]] || fail "fallback_reason '$r_fallback_reason' does not say: $why"
    expect_eq "$r_backends_nvme_copy_bytes" "" "no nvme-copy bytes"
    expect_eq "$r_verified" true "verified"
}

fill_random "$a" 0 1M refuse-src
fill_random "$NVME0N4" 0 1M refuse-pi

note "LBA data size: 512 B → 4 KiB"
refused "$a" "$NVME0N3" "incompatible formats (namespace 1 vs 3: LBA data size 512 B vs 4096 B)" \
    "offload needs equal logical block sizes"
note "metadata: none → 8 bytes of Type 1 PI"
refused "$a" "$NVME0N5" "incompatible formats (namespace 1 vs 5: metadata size 0 B vs 8 B)"
note "PI format: 16-bit guard (8 bytes) → 64-bit guard (16 bytes)"
refused "$NVME0N4" "$NVME0N7" "incompatible formats (namespace 4 vs 7: metadata size 8 B vs 16 B)"
note "another controller"
refused "$a" "$NVME1N1" "different NVMe controllers"
note "nvme_xns_refuse: ok"
