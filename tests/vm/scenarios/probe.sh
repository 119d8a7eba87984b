#!/bin/bash
# offload-copy probe against the kernel's own view (sysfs / BLKGETSIZE64 / BLKSSZGET): an NVMe
# namespace (512 B and 4 KiB blocks), its generic char device, a LIO LUN's disk and sg node.
# vm-nvme: ctrl=0 nsid=1 size=64M lbs=512 mssrl=128 mcl=128 msrc=127
# vm-nvme: ctrl=1 nsid=1 size=32M lbs=4096 mssrl=64 mcl=256 msrc=15
# vm-lio: name=lun0 backstore=fileio size=48M lbs=4096
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
# vm-group: nvme_one_ns
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy

# probe_check PATH KIND SIZE LBS: run probe --json and compare the common fields. Leaves the
# offload entries in P_nvme_copy_available, P_nvme_copy_limits, P_scsi_xcopy_available, ...
probe_check() {
    local path=$1 kind=$2 size=$3 lbs=$4 fields
    note "probe $path"
    run_rc rc "$OFFCOPY_BIN" probe "$path" --json
    expect_eq "$rc" 0 "probe $path exit status"
    # One python start for every field (each start costs about a second in the guest).
    fields=$("$PY" -S -c '
import json, shlex, sys
j = json.loads(sys.argv[1])
def out(k, v):
    print(f"P_{k}=" + shlex.quote(v if isinstance(v, str) else json.dumps(v)))
for k in ("path", "kind", "size_bytes", "logical_block_bytes", "read_only"):
    out(k, j.get(k, "<missing>"))
off = j.get("offload")
out("offload_is_list", isinstance(off, list))
for e in off if isinstance(off, list) else []:
    b = str(e.get("backend", "")).replace("-", "_")
    for k in ("available", "reason", "limits"):
        out(f"{b}_{k}", e.get(k, "<missing>"))
' "$(report_json)") || fail "probe $path --json: not a JSON object: $(report_json)"
    P_nvme_copy_available= P_nvme_copy_limits= P_scsi_xcopy_available= P_scsi_xcopy_limits=
    eval "$fields"
    expect_eq "$P_path" "$path" "$path: path"
    expect_eq "$P_kind" "$kind" "$path: kind"
    expect_eq "$P_size_bytes" "$size" "$path: size_bytes"
    expect_eq "$P_logical_block_bytes" "$lbs" "$path: logical_block_bytes"
    expect_eq "$P_read_only" false "$path: read_only"
    expect_eq "$P_offload_is_list" true "$path: offload is an array"
}

for var in NVME0N1 NVME1N1; do
    dev=${!var}
    size=$(( $(sysfs_block "$dev" size) * 512 ))
    lbs=$(sysfs_block "$dev" queue/logical_block_size)
    expect_eq "$size" "$(dev_size "$dev")" "$dev: sysfs size vs BLKGETSIZE64"
    probe_check "$dev" block-device "$size" "$lbs"
    expect_eq "$P_nvme_copy_available" true "$dev: nvme-copy available"
    note "$dev nvme-copy limits: $P_nvme_copy_limits"
    gen=NG${var#NVME}
    probe_check "${!gen}" nvme-char "$size" "$lbs"
done
expect_eq "$(sysfs_block "$NVME1N1" queue/logical_block_size)" 4096 "4 KiB namespace (rig)"

lun_size=$(( $(sysfs_block "$LUN0_SD" size) * 512 ))
lun_lbs=$(sysfs_block "$LUN0_SD" queue/logical_block_size)
expect_eq "$lun_size" $((48 << 20)) "LUN size (rig)"
expect_eq "$lun_lbs" 4096 "LUN logical block size (rig)"
probe_check "$LUN0_SD" block-device "$lun_size" "$lun_lbs"
expect_eq "$P_scsi_xcopy_available" true "$LUN0_SD: scsi-xcopy available"
note "$LUN0_SD scsi-xcopy limits: $P_scsi_xcopy_limits"
probe_check "$LUN0_SG" scsi-generic "$lun_size" "$lun_lbs"

note "a regular file"
f=/tmp/probe-file.img
truncate -s 5M "$f"
run_rc rc "$OFFCOPY_BIN" probe "$f" --json
expect_eq "$rc" 0 "probe $f exit status"
eval "$(json_vars f "$(report_json)" kind size_bytes)"
expect_eq "$f_kind" regular-file "$f: kind"
expect_eq "$f_size_bytes" $((5 << 20)) "$f: size_bytes"

note "a missing path: not exit 0"
run_rc rc "$OFFCOPY_BIN" probe /dev/does-not-exist --json
expect_ne "$rc" 0 "probe of a missing path"
note "probe: ok"
