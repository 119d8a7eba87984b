#!/bin/bash
# Rig self-test: NVMe Copy through nvme-cli inside one namespace, no offcopy involved.
# Proves the emulated controller advertises Copy (ONCS bit 8, MSSRL/MCL/MSRC from the nvme-ns
# properties) and really moves the data.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-timeout: 180
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

# Gather: scattered sources land back to back. Copy the four 128 KiB quarters in reverse order
# (ranges of 128 blocks = MSSRL) to LBA 8192, one command per quarter, then compare quarter-wise.
for q in 0 1 2 3; do
    nvme copy "$dev" --sdlba=$((8192 + 256 * q)) --slbs=$((256 * (3 - q))),$((256 * (3 - q) + 128)) \
        --blocks=127,127 --format=0 >/dev/null || fail "nvme copy gather $q"
done
checks=()
for q in 0 1 2 3; do
    checks+=("same $dev $((4194304 + 131072 * q)) $dev $((131072 * (3 - q))) 128K gathered quarter $q")
done
expect_data "${checks[@]}" "zero $dev 5M 1M after the gathered copies"
note "rig_nvme_copy: ok"
