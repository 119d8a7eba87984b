#!/bin/bash
# Multi-source gather on QEMU 10 (issue 9 item 4): one offload-copy run reads namespaces 1 and 8
# and the destination namespace 2 itself (--source, K@SRC:DST:LEN in an extents file) and writes
# them into namespace 2 with format 2h Copy commands that each name several source namespaces:
# the fewest commands the rule allows (destination MSRC 7 / MCL 512, each source's own MSSRL, and
# never a range of namespace 2 after a range of another namespace in one command — QEMU 10 would
# read it from the other one, see nvme_xns_status), every byte checked, the bytes outside the
# ranges untouched. Then sources that cannot take part — a 4 KiB-block namespace, a namespace of
# another controller, a loop device — fall back piece by piece with their reasons in auto mode,
# and make --mode offload exit 3 with nothing written.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=1024 msrc=15 read_error_lba=120000
# vm-nvme: ctrl=0 nsid=2 size=64M lbs=512 mssrl=64 mcl=512 msrc=7 write_error_lba=125000
# vm-nvme: ctrl=0 nsid=3 size=16M lbs=4096 mssrl=128 mcl=1024 msrc=15
# vm-nvme: ctrl=0 nsid=8 size=8M lbs=512 mssrl=32 mcl=256 msrc=15
# vm-nvme: ctrl=1 nsid=1 size=16M lbs=512 mssrl=128 mcl=1024 msrc=15
# vm-require: OFFCOPY_BIN
# vm-timeout: 180
# vm-group: nvme_xns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy
a=$NVME0N1 # source 1: MSSRL 128
d=$NVME0N2 # destination and source 0: MSSRL 64, MCL 512, MSRC 7 (8 ranges)
h=$NVME0N8 # source 2: MSSRL 32
K=1024
M=$((1024 * 1024))

fill_random "$a" 0 4M gather-a
fill_random "$h" 0 4M gather-h
fill_random "$d" 0 4M gather-d

# The extents, in the destination's order; the checks of every byte, built alongside.
list=/tmp/gather.extents
checks=()
dev_of() { case $1 in 0) echo "$d" ;; 1) echo "$a" ;; 2) echo "$h" ;; esac; }
add() { # SOURCE SRC DST LEN
    echo "$1@$2:$3:$4" >>"$list"
    checks+=("same $(dev_of "$1") $2 $d $3 $4 extent $1@$2:$3:$4")
}
: >"$list"
echo "# run A at 8 MiB: 16 ranges of namespace 2 first, then 48 alternating namespaces 1 and 8" >>"$list"
for j in $(seq 0 63); do
    if ((j < 16)); then k=0; elif ((j % 2)); then k=2; else k=1; fi
    add $k $((j * 32 * K)) $((8 * M + j * 8 * K)) $((8 * K))
done
echo "# run B at 12 MiB: 24 ranges alternating another namespace and namespace 2" >>"$list"
for j in $(seq 0 23); do
    if ((j % 2)); then k=0; elif ((j % 4)); then k=2; else k=1; fi
    add $k $(((64 + j) * 32 * K)) $((12 * M + j * 8 * K)) $((8 * K))
done
echo "# run C at 14 MiB: 64 KiB of namespace 8 (4 ranges of its MSSRL 32) then 64 KiB of namespace 1" >>"$list"
add 2 $((3 * M)) $((14 * M)) $((64 * K))
add 1 $((3 * M)) $((14 * M + 64 * K)) $((64 * K))
extents=$(grep -vc '^#' "$list")
# Commands, by the packing rule: run A 16 own ranges in 2 commands of 8 (MSRC 7), then 48 in 6
# (the minimum, 64 / 8); run B f o f o ...: each own range after a foreign one starts a command:
# [f] [o f] x 11 [o] = 13; run C: 4 + 1 ranges, 256 blocks, one command. 22 for 90 extents.
want_commands=22

note "plan: one gathering part reading namespaces 2, 1 and 8, $want_commands commands for $extents extents"
offcopy plan "$d" "$d" --source "$a" --source "$h" --extents-file "$list" --mode offload --json
eval "$(json_vars p "$(report_json)" commands_total parts.0.backend parts.0.gathered.0.medium \
    parts.0.gathered.1.medium parts.0.gathered.2.medium parts.0.gathered.2.max_segment_blocks)"
expect_eq "$(json_get "$(report_json)" parts | "$PY" -S -c 'import json,sys; print(len(json.load(sys.stdin)))')" 1 "parts"
expect_eq "$p_parts_0_backend" nvme-copy "backend"
expect_eq "$p_parts_0_gathered_0_medium $p_parts_0_gathered_1_medium $p_parts_0_gathered_2_medium" "$d $a $h" \
    "gathered media"
expect_eq "$p_parts_0_gathered_2_max_segment_blocks" 32 "namespace 8's MSSRL"
expect_eq "$p_commands_total" "$want_commands" "planned commands"

note "copy: one run, --mode offload, every byte checked"
offcopy copy "$d" "$d" --source "$a" --source "$h" --extents-file "$list" --mode offload --json
eval "$(json_vars r "$(report_json)" backends.nvme-copy.commands backends.nvme-copy.retries bytes_copied \
    gathered_sources.0 gathered_sources.1 gathered_sources.2)"
check_copy_report "$(report_json)" $((88 * 8 * K + 128 * K))
expect_eq "$r_backends_nvme_copy_commands" "$want_commands" "nvme-copy commands (extents: $extents)"
expect_eq "$r_backends_nvme_copy_retries" 0 "commands re-sent smaller (0x183)"
expect_eq "$r_gathered_sources_0 $r_gathered_sources_1 $r_gathered_sources_2" "$d $a $h" "gathered_sources"
expect_data "${checks[@]}" \
    "pattern $d 0 4M gather-d the destination's own source ranges unchanged" \
    "zero $d 4M 4M before run A" \
    "zero $d $((8 * M + 512 * K)) $((3 * M + 512 * K)) between runs A and B" \
    "zero $d $((12 * M + 192 * K)) $((2 * M - 192 * K)) between runs B and C" \
    "zero $d $((14 * M + 128 * K)) $((2 * M - 128 * K)) after run C"

note "sources that cannot take part: 4 KiB blocks, another controller, a loop device"
img=/tmp/gather-loop.img
truncate -s 1M "$img"
loop=$(losetup -f --show "$img") || fail "losetup"
trap 'losetup -d "$loop" 2>/dev/null' EXIT
fill_random "$NVME0N3" 0 64K gather-3
fill_random "$NVME1N1" 0 64K gather-c1
fill_random "$loop" 0 64K gather-loop
base=$((20 * M))
more=(--source "$a" --source "$h" --source "$NVME0N3" --source "$NVME1N1" --source "$loop")
ext=(0@$((4 * M - 64 * K)):$base:64K 1@0:$((base + 64 * K)):64K 3@0:$((base + 128 * K)):64K
    4@0:$((base + 192 * K)):64K 5@0:$((base + 256 * K)):64K 2@0:$((base + 320 * K)):64K)
# --mode offload: the namespace of another controller makes it exit 3 (the 4 KiB-block namespace
# would be exit 2: different logical block sizes are refused before any backend is asked, as for
# one source, nvme_xns_refuse), nothing written, not even the pieces that could be offloaded.
no3=("${ext[@]:0:2}" "${ext[@]:3}")
run_rc rc "$OFFCOPY_BIN" copy "$d" "$d" "${more[@]}" "${no3[@]}" --mode offload --json
expect_eq "$rc" 3 "--mode offload with a source on another controller: exit status"
msg=$(json_get "$(report_json)" error.message)
[[ $msg == "source 4 ($NVME1N1): offload impossible"* ]] || fail "error does not name source 4: $msg"
expect_data "zero $d $base 384K nothing written"

offcopy copy "$d" "$d" "${more[@]}" "${ext[@]}" --verify --json
check_copy_report "$(report_json)" $((384 * K))
eval "$(json_vars f "$(report_json)" backends.nvme-copy.bytes backends.nvme-copy.commands backends.buffered.bytes verified)"
expect_eq "$f_backends_nvme_copy_bytes" $((192 * K)) "nvme-copy bytes: namespaces 2, 1 and 8"
expect_eq "$f_backends_nvme_copy_commands" 2 "nvme-copy commands: [2 1] and [8]"
expect_eq "$f_backends_buffered_bytes" $((192 * K)) "buffered bytes: the three others"
expect_eq "$f_verified" true "verified"
reasons=$(json_get "$(report_json)" fallback_reasons)
echo "fallback_reasons: $reasons"
for want in "source 3 ($NVME0N3): nvme-copy: cross-namespace copy between incompatible formats" \
    "source 4 ($NVME1N1): nvme-copy: source and destination are on different NVMe controllers" \
    "source 5 ($loop): nvme-copy: source is not an NVMe namespace"; do
    [[ $reasons == *"$want"* ]] || fail "fallback_reasons do not say: $want"
done
expect_data "same $d $((4 * M - 64 * K)) $d $base 64K own range" \
    "same $a 0 $d $((base + 64 * K)) 64K namespace 1" \
    "pattern $d $((base + 128 * K)) 64K gather-3 namespace 3 (buffered)" \
    "pattern $d $((base + 192 * K)) 64K gather-c1 another controller (buffered)" \
    "pattern $d $((base + 256 * K)) 64K gather-loop loop device (buffered)" \
    "same $h 0 $d $((base + 320 * K)) 64K namespace 8" \
    "zero $d $((base + 384 * K)) 64K after the ranges"
losetup -d "$loop"
trap - EXIT
rm -f "$img"
note "nvme_xns_gather: ok"
