#!/bin/bash
# The main job: a 64 MiB copy offloaded to QEMU's NVMe controller (NVMe Copy inside one namespace),
# reported as text and as JSON, checked by reading both ranges back with O_DIRECT; then the same
# copy to a second namespace, which QEMU 7.2 cannot offload (no cross-namespace formats): the
# report must say it fell back and why.
# vm-nvme: ctrl=0 nsid=1 size=256M lbs=512 mssrl=128 mcl=1024 msrc=127
# vm-nvme: ctrl=0 nsid=2 size=64M lbs=512 mssrl=128 mcl=1024 msrc=127
# vm-require: OFFCOPY_BIN
# vm-timeout: 420
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
ns=$NVME0N1
other=$NVME0N2

note "filling $ns [0, 64M) with random data"
fill_random "$ns" 0 64M seed-demo-1
expect_data "pattern $ns 0 64M seed-demo-1 source [0, 64M)" "zero $ns 128M 64M destination [128M, 192M) before"

note "offload-copy copy $ns $ns 0:128M:64M --verify"
rc=0
"$OFFCOPY_BIN" copy "$ns" "$ns" 0:128M:64M --verify --no-progress || rc=$?
expect_eq "$rc" 0 "exit status"
expect_data "pattern $ns 128M 64M seed-demo-1 destination after the copy"

note "new data, then offload-copy copy $ns $ns 0:128M:64M --mode offload --verify --json"
fill_random "$ns" 0 64M seed-demo-2
rc=0
"$OFFCOPY_BIN" copy "$ns" "$ns" 0:128M:64M --mode offload --verify --json >/tmp/report.json || rc=$?
cat /tmp/report.json
echo
expect_eq "$rc" 0 "exit status"
check_copy_report "$(cat /tmp/report.json)" $((64 << 20))
nvme_bytes=$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["backends"]["nvme-copy"]["bytes"], r["backends"]["nvme-copy"]["commands"], r["verified"])' /tmp/report.json)
# 64 MiB in 512-byte blocks with MCL 1024 blocks: 128 commands at the least.
expect_eq "$nvme_bytes" "$((64 << 20)) 128 True" "nvme-copy bytes, commands, verified"
expect_data "pattern $ns 128M 64M seed-demo-2 destination after the second copy"

note "offload-copy copy $ns $other 0:0:64M --verify (another namespace: QEMU 7.2 has no cross-namespace Copy)"
rc=0
"$OFFCOPY_BIN" copy "$ns" "$other" 0:0:64M --verify --no-progress || rc=$?
expect_eq "$rc" 0 "exit status"
expect_data "pattern $other 0 64M seed-demo-2 other namespace after the fallback copy"
note "sha256 (O_DIRECT): source $(sum_direct "$ns" 0 64M), other namespace $(sum_direct "$other" 0 64M)"
note "demo: ok"
