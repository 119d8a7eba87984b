#!/bin/bash
# Bad input on real block devices must be refused with exit 2 before anything is written:
# a destination with a mounted file system, extents past the end of either namespace.
# vm-nvme: ctrl=0 nsid=1 size=32M lbs=512
# vm-nvme: ctrl=0 nsid=2 size=32M lbs=512
# vm-nvme: ctrl=0 nsid=3 size=32M lbs=512
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_pair
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$NVME0N1
mnt_dev=$NVME0N2
dst=$NVME0N3
fill_random "$src" 0 16M seed-bad

note "destination mounted (ext4)"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$mnt_dev" || fail "mkfs.ext4"
mkdir -p /tmp/mnt
mount -t ext4 "$mnt_dev" /tmp/mnt || fail "mount $mnt_dev"
echo hello >/tmp/mnt/file
sync
# The region the copy would write: 24M..28M of the file system's device.
before=$(sum_direct "$mnt_dev" 24M 4M)
run_rc rc "$OFFCOPY_BIN" copy "$src" "$mnt_dev" 0:24M:4M --json
expect_eq "$rc" 2 "exit status, destination mounted"
expect_eq "$(sum_direct "$mnt_dev" 24M 4M)" "$before" "mounted destination unchanged"
expect_eq "$(cat /tmp/mnt/file)" hello "file on the mounted file system"
out=$(cat "$RUN_OUT")
if json_valid "$out"; then
    err=$(json_get "$out" error || true)
    [[ -n $err && $err != null ]] || fail "exit 2 without an error in the JSON report"
    note "error: $err"
fi
umount /tmp/mnt

note "extent past the end of the destination"
fill_random "$dst" 24M 8M seed-bad-dst
dst_unchanged=("zero $dst 0 24M destination head unchanged"
    "pattern $dst 24M 8M seed-bad-dst destination tail unchanged")
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:28M:8M --json
expect_eq "$rc" 2 "exit status, destination extent past the end"
expect_data "${dst_unchanged[@]}"

note "extent past the end of the source (first extent valid)"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:0:1M 28M:8M:8M --json
expect_eq "$rc" 2 "exit status, source extent past the end"
expect_data "${dst_unchanged[@]}"

note "extent past the end in --mode offload and --mode fallback"
for mode in offload fallback; do
    run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 31M:31M:2M --mode "$mode" --json
    expect_eq "$rc" 2 "exit status, --mode $mode"
done
expect_data "${dst_unchanged[@]}"
note "bad_input_block: ok"
