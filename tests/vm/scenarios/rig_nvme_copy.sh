#!/bin/bash
# Rig self-test: NVMe Copy through nvme-cli inside one namespace, no offcopy involved.
# Proves the emulated controller advertises Copy (ONCS bit 8, MSSRL/MCL/MSRC from the nvme-ns
# properties) and really moves the data, and that it enforces MCL (QEMU >= 9; 7.2 did not).
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-timeout: 180
# vm-group: nvme_one_ns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

dev=$NVME0N1
note "device $dev (generic ${NG0N1:-none})"
expect_eq "$(dev_size "$dev")" $((64 << 20)) "size of $dev"
expect_eq "$(dev_lbs "$dev")" 512 "logical block size of $dev"

eval "$(json_vars c "$(nvme id-ctrl "$dev" -o json)" oncs ocfs)"
(( c_oncs & 0x100 )) || fail "ONCS bit 8 (Copy) is clear: oncs=$c_oncs"
note "ONCS $c_oncs, OCFS $c_ocfs"
eval "$(json_vars n "$(nvme id-ns "$dev" -o json)" mssrl mcl msrc)"
expect_eq "$n_mssrl" 128 "MSSRL"
expect_eq "$n_mcl" 128 "MCL"
expect_eq "$n_msrc" 127 "MSRC (0-based)"

# 1 MiB of random data at LBA 0, copied to LBA 4096 (2 MiB) in 16 commands of 4 ranges x 32 blocks.
fill_random "$dev" 0 1M seed-nvme
expect_data "pattern $dev 0 1M seed-nvme source after fill" "zero $dev 2M 1M destination before copy"
for i in $(seq 0 15); do
    s=$((128 * i))
    nvme copy "$dev" --sdlba=$((4096 + s)) --slbs=$s,$((s + 32)),$((s + 64)),$((s + 96)) \
        --blocks=31,31,31,31 --format=0 >/dev/null || fail "nvme copy command $i"
done
expect_data "pattern $dev 2M 1M seed-nvme destination after nvme copy"

# Gather: scattered sources land back to back. Each command takes the first half (64 blocks) of
# two 128-block pieces of a 128 KiB quarter, quarters in reverse order, 128 blocks (= MCL) per
# command to LBA 8192 + 128 q; then compare piece by piece.
for q in 0 1 2 3; do
    s=$((256 * (3 - q)))
    nvme copy "$dev" --sdlba=$((8192 + 128 * q)) --slbs=$s,$((s + 128)) \
        --blocks=63,63 --format=0 >/dev/null || fail "nvme copy gather $q"
done
checks=()
for q in 0 1 2 3; do
    s=$((131072 * (3 - q)))
    checks+=("same $dev $((4194304 + 65536 * q)) $dev $s 32K gathered quarter $q, first piece"
             "same $dev $((4194304 + 65536 * q + 32768)) $dev $((s + 65536)) 32K gathered quarter $q, second piece")
done
expect_data "${checks[@]}" "zero $dev $((4194304 + 262144)) $((1048576 - 262144)) after the gathered copies"

# QEMU >= 9 enforces MCL (7.2 did not): 2 x 128 blocks > MCL 128 is Command Size Limit Exceeded
# (SCT 1h, SC 83h, DNR: 0x4183), and nothing is written.
rc=0
out=$(nvme copy "$dev" --sdlba=12288 --slbs=0,128 --blocks=127,127 --format=0 2>&1) || rc=$?
echo "$out"
expect_ne "$rc" 0 "exit status of an over-MCL nvme copy"
[[ $out == *"Command Size Limit Exceeded"* ]] || fail "over-MCL copy: expected Command Size Limit Exceeded"
expect_data "zero $dev 6M 128K nothing written by the refused copy"
note "rig_nvme_copy: ok"
