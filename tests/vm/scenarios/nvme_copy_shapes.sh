#!/bin/bash
# NVMe Copy across namespace shapes: 4 KiB blocks with large limits (256 ranges, MSSRL 2048,
# MCL 16384) and 512-byte blocks with the tiniest limits (MSSRL=MCL=1, MSRC=0: one block per
# command). Every copy is checked byte for byte and for the minimal command count.
# vm-nvme: ctrl=2 nsid=1 size=128M lbs=4096 mssrl=2048 mcl=16384 msrc=255
# vm-nvme: ctrl=2 nsid=2 size=8M lbs=512 mssrl=1 mcl=1 msrc=0
# vm-require: OFFCOPY_BIN
# vm-timeout: 400
# vm-group: nvme_formats
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy

commands_of() { json_get "$1" backends.nvme-copy.commands; }

big=$NVME2N1
note "4 KiB blocks, large limits"
expect_eq "$(nvme_probe_get "$big" /logical_block_bytes)" 4096 "block size"
expect_eq "$(nvme_probe_get "$big" limits.max_segments_per_command)" 256 "segments per command (MSRC 255)"
expect_eq "$(nvme_probe_get "$big" limits.max_command_blocks)" 16384 "MCL"
fill_random "$big" 0 16M seed-4k
run_rc rc "$OFFCOPY_BIN" copy "$big" "$big" 0:64M:16M --mode offload --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((16 << 20))
expect_eq "$(commands_of "$report")" "$(nvme_min_commands 4096 255 2048 16384 0:64M:16M)" "commands, 16 MiB"
expect_eq "$(commands_of "$report")" 1 "16 MiB = 4096 blocks = one command of 2 ranges"
expect_eq "$(sum_direct "$big" 64M 16M)" "$(sum_direct "$big" 0 16M)" "16 MiB copy"

note "600 scattered 4 KiB sources gathered: 256 ranges per command"
"$PY" -S -c '
for i in range(600):
    print(f"{i * 3 * 4096}:{(96 << 20) + i * 4096}:4096")' >/tmp/ext4k.txt
want=$(nvme_min_commands 4096 255 2048 16384 </tmp/ext4k.txt)
expect_eq "$want" 3 "greedy minimum"
run_rc rc "$OFFCOPY_BIN" copy "$big" "$big" --extents-file /tmp/ext4k.txt --mode offload --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((600 * 4096))
expect_eq "$(commands_of "$report")" "$want" "commands, 600 extents"
got=$("$PY" -S -c '
import os, mmap, hashlib
fd = os.open("'"$big"'", os.O_RDONLY | os.O_DIRECT)
src = mmap.mmap(-1, 1800 * 4096); os.preadv(fd, [src], 0)
dst = mmap.mmap(-1, 600 * 4096); os.preadv(fd, [dst], 96 << 20)
print(all(src[i * 3 * 4096:(i * 3 + 1) * 4096] == dst[i * 4096:(i + 1) * 4096] for i in range(600)))')
expect_eq "$got" True "600 gathered blocks"

tiny=$NVME2N2
note "512-byte blocks, MSSRL=1 MCL=1 MSRC=0"
expect_eq "$(nvme_probe_get "$tiny" available)" true "available with MSRC=0 (one range)"
expect_eq "$(nvme_probe_get "$tiny" limits.max_segments_per_command)" 1 "segments per command"
fill_random "$tiny" 0 64K seed-tiny
for submit in sync async; do
    dst=$([[ $submit == sync ]] && echo 1M || echo 2M)
    run_rc rc "$OFFCOPY_BIN" copy "$tiny" "$tiny" "0:$dst:64K" 100K:3M:1K --mode offload --submit $submit --json
    expect_eq "$rc" 0 "exit status ($submit)"
    report=$(report_json)
    check_copy_report "$report" $((65 << 10))
    expect_eq "$(commands_of "$report")" 130 "one command per block ($submit)"
    expect_eq "$(sum_direct "$tiny" "$dst" 64K)" "$(sum_direct "$tiny" 0 64K)" "64 KiB ($submit)"
done
expect_eq "$(sum_direct "$tiny" 3M 1K)" "$(sum_direct "$tiny" 100K 1K)" "1 KiB extent"
note "nvme_copy_shapes: ok"
