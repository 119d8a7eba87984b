#!/bin/bash
# QEMU 10's own answers to Copy commands built here from the spec's offsets and sent with nvme-cli
# io-passthru (no offcopy code involved): the oracle tests/models/nvme_model follows. Invalid
# Field for format 2h without CDFE; 0x183 for a range over the *source* namespace's MSSRL (ranges
# before it copied), for NR over the destination's MSRC + 1 and for a total over its MCL; 0x185 for
# namespaces of different formats; 0x187 for a format 2h range in the destination namespace ending
# inside the destination; Invalid Field / Invalid Namespace for a source NSID not attached / out
# of range. Then offload-copy against
# the same controller with planner limits looser than the device's (OFFCOPY_TEST_NVME_LIMITS): the
# real 0x183 answers are re-split, counted in retries, and the data is exact.
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
a=$NVME0N1 # nsid 1: MSSRL 128, MCL 1024, MSRC 15
b=$NVME0N2 # nsid 2: MSSRL 64, MCL 512, MSRC 7
ctrl=$(nvme_ctrl_of "$a")
r=/tmp/ranges.bin

# expect_status WHAT WANT OUTPUT: nvme-cli printed the status WANT (e.g. 0x4183).
expect_status() {
    echo "$3"
    [[ $3 == *"($2)"* ]] || fail "$1: expected NVMe status $2"
    echo "ok: $1 = $2"
}

fill_random "$a" 0 1M status-a
fill_random "$b" 0 1M status-b

note "format 2h with CDFE clear: Invalid Field (0x4002)"
hbs_put_byte "$ctrl" 4 0
copy_ranges "$r" 1:0:8
expect_status "format 2h, CDFE 0" 0x4002 "$(raw_copy "$b" 2 4096 2 "$r")"
hbs_put_byte "$ctrl" 4 0x0c

note "0x183: a range over the source's MSSRL (namespace 2: 64) after one within it; destination namespace 1 (MSSRL 128)"
copy_ranges "$r" 2:0:64 2:64:100
expect_status "range 1 of 100 blocks from namespace 2" 0x4183 "$(raw_copy "$a" 1 8192 2 "$r")"
expect_data "same $a $((8192 * 512)) $b 0 32K range 0 copied before the refusal" \
    "zero $a $((8256 * 512)) 50K range 1 not copied"
copy_ranges "$r" 1:0:100
raw_copy "$b" 2 4096 2 "$r" | grep -q Success || fail "100 blocks from namespace 1 (MSSRL 128) into namespace 2 (MSSRL 64)"
echo "ok: the same 100 blocks from namespace 1 are accepted: the source's MSSRL counts, not the destination's"

note "0x183: 9 ranges into namespace 2 (MSRC 7), 640 blocks into namespace 2 (MCL 512)"
copy_ranges "$r" 1:0:8 1:8:8 1:16:8 1:24:8 1:32:8 1:40:8 1:48:8 1:56:8 1:64:8
expect_status "NR over MSRC + 1" 0x4183 "$(raw_copy "$b" 2 8192 2 "$r")"
copy_ranges "$r" 1:0:128 1:128:128 1:256:128 1:384:128 1:512:128
expect_status "total over MCL" 0x4183 "$(raw_copy "$b" 2 8192 2 "$r")"
expect_data "zero $b $((8192 * 512)) 320K neither wrote anything"

note "0x185: namespace 1 (512 B) into namespace 3 (4 KiB)"
copy_ranges "$r" 1:0:8
expect_status "incompatible formats" 0x4185 "$(raw_copy "$NVME0N3" 3 0 2 "$r")"

note "0x187: format 2h, source in the destination namespace, ending inside the destination range"
copy_ranges "$r" 1:0:16
expect_status "overlapping range" 0x4187 "$(raw_copy "$a" 1 8 2 "$r")"

note "source NSID 99 (possible, not attached): Invalid Field; 1000 (over QEMU's 256): Invalid Namespace"
copy_ranges "$r" 99:0:8
expect_status "source namespace not attached" 0x4002 "$(raw_copy "$b" 2 4096 2 "$r")"
copy_ranges "$r" 1000:0:8
expect_status "source NSID out of range" 0x400b "$(raw_copy "$b" 2 4096 2 "$r")"

note "QEMU 10 quirk (matters for multi-source gathers): a range naming the destination's own"
note "namespace after a range from another is read from that other namespace"
copy_ranges "$r" 1:0:8 2:64:8
raw_copy "$b" 2 16384 2 "$r" | grep -q Success || fail "two-namespace gather"
expect_data "same $b $((16384 * 512)) $a 0 4K range 0 from namespace 1" \
    "same $b $((16392 * 512)) $a $((64 * 512)) 4K range 1 (namespace 2 named) read from namespace 1"

note "offload-copy with planner limits looser than the device's: real 0x183, re-split, exact"
fill_random "$a" 4M 4M status-big
# Ranges of 256 blocks from namespace 1 (MSSRL 128): every command's first range is refused.
OFFCOPY_TEST_NVME_LIMITS=256:512:7 offcopy copy "$a" "$b" 4M:8M:4M --mode offload --verify --json
eval "$(json_vars s "$(report_json)" bytes_copied backends.nvme-copy.retries verified)"
expect_eq "$s_bytes_copied" $((4 << 20)) "bytes_copied, ranges over MSSRL"
(( s_backends_nvme_copy_retries > 0 )) || fail "no retries counted"
echo "ok: retries = $s_backends_nvme_copy_retries"
expect_eq "$s_verified" true "verified"
# Commands of 1024 blocks into namespace 2 (MCL 512): refused before any range.
OFFCOPY_TEST_NVME_LIMITS=128:1024:7 offcopy copy "$a" "$b" 4M:12M:4M --mode offload --verify --json
eval "$(json_vars s "$(report_json)" bytes_copied backends.nvme-copy.retries verified)"
expect_eq "$s_bytes_copied" $((4 << 20)) "bytes_copied, commands over MCL"
(( s_backends_nvme_copy_retries >= 8 )) || fail "expected a retry per command, got $s_backends_nvme_copy_retries"
echo "ok: retries = $s_backends_nvme_copy_retries"
expect_eq "$s_verified" true "verified"
expect_data "pattern $b 8M 4M status-big first copy" "pattern $b 12M 4M status-big second copy"
note "nvme_xns_status: ok"
