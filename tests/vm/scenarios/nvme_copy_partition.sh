#!/bin/bash
# NVMe Copy through partitions: the resolution stage gives the backend the namespace and
# namespace LBAs (the command's LBAs are namespace-absolute), inside one partition and from one
# partition to another of the same namespace; nothing outside the partition is touched, an extent
# past its end is refused, and the partition read buffered afterwards shows the new bytes.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_one_ns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy
dev=$NVME0N1

note "MBR: p1 at 1 MiB (20 MiB), p2 at 22 MiB (20 MiB)"
"$PY" -S - "$dev" <<'PYEOF'
import struct, sys
mbr = bytearray(512)
def entry(i, start, count):
    struct.pack_into("<B3sB3sII", mbr, 446 + 16 * i, 0, b"\0\0\0", 0x83, b"\0\0\0", start, count)
entry(0, 2048, 40960)
entry(1, 45056, 40960)
mbr[510:512] = b"\x55\xaa"
with open(sys.argv[1], "r+b") as f:
    f.write(mbr)
PYEOF
blockdev --rereadpt "$dev"
for i in 1 2 3 4 5; do [[ -b ${dev}p2 ]] && break; sleep 0.5; done
p1=${dev}p1
p2=${dev}p2
[[ -b $p1 && -b $p2 ]] || fail "partitions did not appear"
# probe: one piece on the namespace at the partition's start, and the namespace's nvme-copy.
eval "$(json_vars p1 "$("$OFFCOPY_BIN" probe "$p1" --json)" pieces_total pieces.0.medium \
    pieces.0.medium_offset_bytes media.0.path offload)"
expect_eq "$p1_pieces_total" 1 "pieces of $p1"
expect_eq "$p1_pieces_0_medium" "$dev" "medium of $p1"
expect_eq "$p1_pieces_0_medium_offset_bytes" $((2048 * 512)) "partition start on the namespace"
expect_eq "$p1_offload" "[]" "no backend addresses the partition itself"
expect_eq "$(nvme_probe_get "$dev" available)" true "nvme-copy on $dev"
eval "$(json_vars p2 "$("$OFFCOPY_BIN" probe "$p2" --json)" pieces.0.medium_offset_bytes)"
expect_eq "$p2_pieces_0_medium_offset_bytes" $((45056 * 512)) "p2 start on the namespace"

fill_random "$dev" 1M 8M seed-part
whole_before=$(sum_direct "$dev" 0 64M)
pre_head=$(sum_direct "$dev" 0 9M)
pre_tail=$(sum_direct "$dev" 13M 51M)

note "inside p1: 4 MiB from p1+0 to p1+8M (the destination's pages cached through $p1 first)"
dd if="$p1" of=/dev/null bs=1M skip=8 count=4 status=none
run_rc rc "$OFFCOPY_BIN" copy "$p1" "$p1" 0:8M:4M --mode offload --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((4 << 20))
expect_eq "$(json_get "$report" backends.nvme-copy.commands)" 64 "commands"
expect_eq "$(sum_direct "$dev" 9M 4M)" "$(sum_direct "$dev" 1M 4M)" "absolute 9M..13M = 1M..5M"
expect_eq "$(sum_direct "$p1" 8M 4M)" "$(sum_direct "$p1" 0 4M)" "through $p1"
expect_eq "$(dd if="$p1" bs=1M skip=8 count=4 status=none | sha256sum | cut -d' ' -f1)" \
    "$(sum_direct "$dev" 1M 4M)" "through $p1, buffered (no stale page cache over the namespace)"
expect_eq "$(sum_direct "$dev" 0 9M)" "$pre_head" "before the destination untouched (MBR, p1 0..8M)"
expect_eq "$(sum_direct "$dev" 13M 51M)" "$pre_tail" "after the destination untouched"

note "p1 → p2 (same namespace, two partitions)"
run_rc rc "$OFFCOPY_BIN" copy "$p1" "$p2" 1M:2M:3M --mode offload --json
expect_eq "$rc" 0 "exit status"
check_copy_report "$(report_json)" $((3 << 20))
expect_eq "$(sum_direct "$dev" 24M 3M)" "$(sum_direct "$dev" 2M 3M)" "absolute 24M..27M = 2M..5M"

note "an extent past the end of p1 is refused and nothing is written"
before=$(sum_direct "$dev" 0 64M)
run_rc rc "$OFFCOPY_BIN" copy "$p1" "$p1" 0:19M:2M --mode offload --json
expect_eq "$rc" 2 "exit status"
expect_eq "$(sum_direct "$dev" 0 64M)" "$before" "namespace unchanged"
[[ $whole_before != "$before" ]] || fail "copies above did not change anything?"
note "nvme_copy_partition: ok"
