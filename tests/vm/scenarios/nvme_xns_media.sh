#!/bin/bash
# Media errors in the middle of cross-namespace Copy commands on QEMU 10, injected with blkdebug
# (EIO on every read of namespace 1's LBA 120000, every write of namespace 2's LBA 125000): the
# controller answers Unrecovered Read Error (02h/81h) or Write Fault (02h/80h) with CQE DW0 = the
# first range not copied, and offload-copy reports exactly the bytes that reached the destination,
# in --mode offload and auto alike (a media error is not a reason to fall back), with one command in
# flight and with many.
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
bad_read=120000  # namespace 1, read_error_lba
bad_write=125000 # namespace 2, write_error_lba

# check_media_error WHAT SCT SC DW0 BYTES: the last report failed with this NVMe status and count.
check_media_error() {
    eval "$(json_vars e "$(report_json)" bytes_copied error.code error.nvme.sct error.nvme.sc error.nvme.dw0 \
        error.nvme.dnr fallback_reason)"
    expect_eq "$e_error_code" device-error "$1: error code"
    expect_eq "$e_error_nvme_sct/$e_error_nvme_sc/$e_error_nvme_dnr" "$2/$3/false" "$1: SCT/SC/DNR"
    expect_eq "$e_error_nvme_dw0" "$4" "$1: CQE DW0 (first range not copied)"
    expect_eq "$e_bytes_copied" "$5" "$1: bytes_copied"
    expect_eq "$e_fallback_reason" "" "$1: no fallback"
}

note "one command gathering 8 extents of 16 KiB; the 6th holds LBA $bad_read"
# Source extents 64 blocks apart, 32 blocks long; extent k starts at bad_read - 5*64 - 4 + 64 k,
# so extent 5 covers bad_read. All land back to back at 40 MiB of namespace 2: one command
# (8 ranges = MSRC + 1, 256 blocks <= MCL 512).
fill_random "$a" $(((bad_read - 5 * 64 - 4) * 512)) 256K media-src
extents=()
for k in 0 1 2 3 4 5 6 7; do
    extents+=("$(((bad_read - 5 * 64 - 4 + 64 * k) * 512)):$((40 * 1048576 + k * 16384)):16K")
done
for mode in offload auto; do
    run_rc rc "$OFFCOPY_BIN" copy "$a" "$b" "${extents[@]}" --mode "$mode" --json
    expect_eq "$rc" 1 "--mode $mode: exit status (device error)"
    check_media_error "--mode $mode" 2 129 5 $((5 * 16384))
    expect_eq "$(json_get "$(report_json)" backends.nvme-copy.commands)" 1 "--mode $mode: one command"
    checks=()
    for k in 0 1 2 3 4; do
        checks+=("same $b $((40 * 1048576 + k * 16384)) $a $(((bad_read - 5 * 64 - 4 + 64 * k) * 512)) 16K extent $k copied")
    done
    expect_data "${checks[@]}" "zero $b $((40 * 1048576 + 5 * 16384)) 48K extents 5-7 not written"
done

note "a 1 MiB extent over LBA $bad_read: commands of 512 blocks (4 ranges of 128), the 2nd fails at range 1"
# Source [bad_read - 700, +2048 blocks): command 1 covers source blocks 512-1023, LBA bad_read is
# block 700 of the extent, in its range 1 (640-767): DW0 1.
src=$(((bad_read - 700) * 512))
fill_random "$a" "$src" 1M media-big
run_rc rc "$OFFCOPY_BIN" copy "$a" "$b" "$src:44M:1M" --mode offload --in-flight 1 --json
expect_eq "$rc" 1 "one in flight: exit status"
check_media_error "one in flight" 2 129 1 $(((512 + 128) * 512))
expect_data "pattern $b 44M $(((512 + 128) * 512)) media-big blocks 0-639 copied" \
    "zero $b $((44 * 1048576 + 640 * 512)) $(((2048 - 640) * 512)) blocks 640-2047 not written"

run_rc rc "$OFFCOPY_BIN" copy "$a" "$b" "$src:48M:1M" --mode offload --in-flight 32 --json
expect_eq "$rc" 1 "32 in flight: exit status"
# The commands after the failing one were in flight and completed: they count, exactly.
check_media_error "32 in flight" 2 129 1 $(((2048 - 512 + 128) * 512))
expect_data "pattern $b 48M $((640 * 512)) media-big blocks 0-639 copied" \
    "zero $b $((48 * 1048576 + 640 * 512)) $((384 * 512)) blocks 640-1023 (rest of the failed command) not written" \
    "same $b $((48 * 1048576 + 1024 * 512)) $a $((src + 1024 * 512)) $((1024 * 512)) blocks 1024-2047 copied"

note "Write Fault: namespace 2's LBA $bad_write is block 1000 of the destination"
# Destination [bad_write - 1000, +2048 blocks): command 1 writes blocks 512-1023 in ranges of 128;
# block 1000 is in range 3 (896-1023): DW0 3.
dst=$(((bad_write - 1000) * 512))
fill_random "$a" 0 1M media-w
run_rc rc "$OFFCOPY_BIN" copy "$a" "$b" "0:$dst:1M" --mode auto --in-flight 1 --json
expect_eq "$rc" 1 "write fault: exit status"
check_media_error "write fault" 2 128 3 $(((512 + 384) * 512))
expect_data "pattern $b $dst $(((512 + 384) * 512)) media-w blocks 0-895 copied" \
    "zero $b $((dst + 1024 * 512)) $((1024 * 512)) blocks 1024-2047 not written"
note "nvme_xns_media: ok"
