#!/bin/bash
# NVMe Copy on QEMU's controller, 512-byte blocks, MSSRL=MCL=128, MSRC=127 (128 ranges):
# probe (block and char device), sync and async submission with the minimal command count,
# gather, 10,000 scattered extents in one request, overlapping copy, page-cache coherence,
# nvme-cli cross-check, another namespace of the controller (offloaded: QEMU 10 has formats 2h/3h)
# and the refusal for another controller with its reason.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=8M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=1 nsid=1 size=32M lbs=4096 mssrl=64 mcl=256 msrc=15
# vm-require: OFFCOPY_BIN
# vm-timeout: 400
# vm-group: nvme_one_ns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../nvme_lib.sh"
require_offcopy
dev=$NVME0N1
chr=$NG0N1
LIM=(512 127 128 128)

commands_of() { json_get "$1" backends.nvme-copy.commands; }

note "probe"
expect_eq "$(nvme_probe_get "$dev" available)" true "nvme-copy available on $dev"
expect_eq "$(nvme_probe_get "$dev" details.ocfs)" 0xf "OCFS (QEMU 10: formats 0h-3h)"
expect_eq "$(nvme_probe_get "$dev" details.mssrl)" 128 "MSSRL"
expect_eq "$(nvme_probe_get "$dev" details.msrc_0based)" 127 "MSRC (0-based)"
expect_eq "$(nvme_probe_get "$dev" limits.max_segments_per_command)" 128 "segments per command"
expect_eq "$(nvme_probe_get "$dev" limits.contiguous_destination)" true "gather shape"
expect_eq "$(nvme_probe_get "$chr" /size_bytes)" $((64 << 20)) "char device size"
expect_eq "$(nvme_probe_get "$chr" /logical_block_bytes)" 512 "char device block size"
expect_eq "$(nvme_probe_get "$chr" /block_path)" "$dev" "char device block path"
expect_eq "$(nvme_probe_get "$chr" /identity)" "$(nvme_probe_get "$dev" /identity)" "same identity"
"$OFFCOPY_BIN" probe "$dev"

fill_random "$dev" 0 8M seed-basic
src_sum=$(sum_direct "$dev" 0 4M)

for submit in sync async; do
    note "--submit $submit, 4 MiB in one extent"
    dst=$([[ $submit == sync ]] && echo 16M || echo 20M)
    run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" "0:$dst:4M" --mode offload --submit $submit --json
    expect_eq "$rc" 0 "exit status"
    report=$(report_json)
    check_copy_report "$report" $((4 << 20))
    expect_eq "$(commands_of "$report")" "$(nvme_min_commands "${LIM[@]}" "0:$dst:4M")" "commands ($submit)"
    expect_eq "$(sum_direct "$dev" "$dst" 4M)" "$src_sum" "destination ($submit)"
done

note "char device as source and destination"
run_rc rc "$OFFCOPY_BIN" copy "$chr" "$chr" 0:24M:1M --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(sum_direct "$dev" 24M 1M)" "$(sum_direct "$dev" 0 1M)" "copy through $chr"

note "gather: three scattered sources into one contiguous destination = 1 command"
ext=(100s:51200s:16s 300s:51216s:32s 1000s:51248s:8s)
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" "${ext[@]}" --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(commands_of "$(report_json)")" 1 "gather commands"
note "same gather through nvme-cli to another place: identical bytes"
nvme copy "$dev" --sdlba=53248 --slbs=100,300,1000 --blocks=15,31,7 --format=0 >/dev/null || fail "nvme copy"
expect_eq "$(sum_direct "$dev" 51200s 56s)" "$(sum_direct "$dev" 53248s 56s)" "offcopy vs nvme copy"
expect_eq "$(sum_direct "$dev" 51216s 32s)" "$(sum_direct "$dev" 300s 32s)" "gathered range 2"

note "10,000 scattered one-block extents gathered in one request"
"$PY" -S -c '
for i in range(10000):
    print(f"{i * 2 * 512}:{(28 << 20) + i * 512}:512")' >/tmp/extents.txt
want_cmds=$(nvme_min_commands "${LIM[@]}" </tmp/extents.txt)
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" --extents-file /tmp/extents.txt --mode offload --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((10000 * 512))
expect_eq "$(commands_of "$report")" "$want_cmds" "commands for 10,000 extents"
want=$("$PY" -S -c '
import os, hashlib
fd = os.open("'"$dev"'", os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 20000 * 512)
os.preadv(fd, [buf], 0)
h = hashlib.sha256()
for i in range(10000):
    h.update(buf[i * 1024:i * 1024 + 512])
print(h.hexdigest())')
expect_eq "$(sum_direct "$dev" 28M 5000K)" "$want" "gathered 10,000 blocks"

note "overlapping copy inside the namespace (forward by 1 MiB, memmove semantics)"
orig=$(sum_direct "$dev" 0 4M)
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" 0:1M:4M --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(sum_direct "$dev" 1M 4M)" "$orig" "overlapping destination"
note "and backward"
orig=$(sum_direct "$dev" 1M 4M)
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$dev" 1M:512K:4M --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(sum_direct "$dev" 512K 4M)" "$orig" "overlapping destination (backward)"

note "coherence: a buffered fd held open on the destination reads the new data after the copy"
fill_random "$dev" 40M 1M seed-coherence
"$PY" -S - "$OFFCOPY_BIN" "$dev" <<'PYEOF' || fail "stale page cache after offloaded copy"
import hashlib, os, subprocess, sys
binary, dev = sys.argv[1], sys.argv[2]
fd = os.open(dev, os.O_RDONLY)          # buffered: fills the page cache
before = os.pread(fd, 1 << 20, 44 << 20)
subprocess.run([binary, "copy", dev, dev, f"{40 << 20}:{44 << 20}:1M", "--mode", "offload"], check=True)
after = os.pread(fd, 1 << 20, 44 << 20)
src = os.pread(fd, 1 << 20, 40 << 20)
print("before==src", before == src, "after==src", after == src)
sys.exit(0 if after == src and before != src else 1)
PYEOF
echo "ok: buffered fd sees the copied data"

note "other namespace of the same controller: cross-namespace Copy (format 2h)"
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$NVME0N2" 0:0:1M --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((1 << 20)) "nvme-copy bytes"
expect_data "same $NVME0N2 0 $dev 0 1M copied" "zero $NVME0N2 1M 1M nothing else written"

note "other controller"
run_rc rc "$OFFCOPY_BIN" copy "$dev" "$NVME1N1" 0:0:1M --json
expect_eq "$rc" 0 "exit status"
reason=$(json_get "$(report_json)" fallback_reason)
[[ $reason == *"different NVMe controllers"* ]] || fail "fallback reason: $reason"
echo "ok: fallback reason: $reason"
note "nvme_copy_basic: ok"
