#!/bin/bash
# The main job: 64 MiB namespace -> namespace with offload-copy, reported as text and as JSON,
# each checked by reading both namespaces back with O_DIRECT.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 420
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$NVME0N1
dst=$NVME0N2

note "filling $src with 64 MiB of random data"
fill_random "$src" 0 64M seed-demo-1
want=$(sum_random 64M seed-demo-1)
expect_eq "$(sum_direct "$src" 0 64M)" "$want" "source"

note "offload-copy copy $src $dst 0:0:64M --verify"
t0=$(now)
rc=0
"$OFFCOPY_BIN" copy "$src" "$dst" 0:0:64M --verify || rc=$?
t1=$(now)
expect_eq "$rc" 0 "exit status"
expect_eq "$(sum_direct "$dst" 0 64M)" "$want" "destination after the copy"
note "took $("$PY" -c "print(f'{$t1 - $t0:.2f}')") s"

note "new data, then offload-copy copy $src $dst 0:0:64M --verify --json"
fill_random "$src" 0 64M seed-demo-2
want=$(sum_random 64M seed-demo-2)
rc=0
"$OFFCOPY_BIN" copy "$src" "$dst" 0:0:64M --verify --json >/tmp/report.json || rc=$?
cat /tmp/report.json
echo
expect_eq "$rc" 0 "exit status"
check_copy_report "$(cat /tmp/report.json)" $((64 << 20))
expect_eq "$(sum_direct "$dst" 0 64M)" "$want" "destination after the second copy"
note "demo: ok"
