#!/bin/bash
# Benchmark (run by bench/vm_lvm_256m.sh, not a CTest test): a 256 MiB LVM logical volume copied
# onto another, both on one volume group over two NVMe namespaces of one controller (LV a on
# namespace 1, LV b on namespace 2: cross-namespace NVMe Copy, format 2h), offload-copy
# --mode offload against dd bs=1M iflag=direct oflag=direct on the LVs, in the same boot,
# alternating. Prints the medians and dd_time / offcopy_time (> 1: offload-copy is faster).
# vm-nvme: ctrl=0 nsid=1 size=272M lbs=512
# vm-nvme: ctrl=0 nsid=2 size=272M lbs=512
# vm-require: OFFCOPY_BIN
# vm-timeout: 1800
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
reps=${OFFCOPY_BENCH_REPS:-3}
export LVM_SYSTEM_DIR=/tmp/bench-lvm DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p "$LVM_SYSTEM_DIR"
cat >"$LVM_SYSTEM_DIR/lvm.conf" <<'EOF'
devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 scan_lvs = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
backup { backup = 0 archive = 0 }
global { use_lvmpolld = 0 }
EOF
lvm pvcreate -q -ff -y "$NVME0N1" "$NVME0N2" >/dev/null
lvm vgcreate -q -s 1M vg "$NVME0N1" "$NVME0N2" >/dev/null
lvm lvcreate -q -y -W n -Z n -n a -L 256M vg "$NVME0N1" >/dev/null
lvm lvcreate -q -y -W n -Z n -n b -L 256M vg "$NVME0N2" >/dev/null
src=/dev/mapper/vg-a
dst=/dev/mapper/vg-b

note "filling $src (256 MiB)"
fill_random "$src" 0 256M seed-lvm-bench

time_dd_against_offcopy "$src" "$dst" offload "$reps"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" --mode offload --json
expect_eq "$rc" 0 "exit status"
expect_eq "$(backend_bytes "$(report_json)" nvme-copy)" $((256 << 20)) "nvme-copy carried every byte"
expect_data "pattern $dst 0 256M seed-lvm-bench destination after offload-copy"
lvm vgchange -q -an vg >/dev/null
echo "RESULT bench=vm_lvm_256m reps=$reps dd_s=$DD_MEDIAN offcopy_s=$OC_MEDIAN ratio_dd_over_offcopy=$RATIO_DD_OVER_OC"
