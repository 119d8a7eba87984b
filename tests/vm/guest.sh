#!/bin/bash
# tests/vm/guest.sh SHARE — runs inside the guest, chrooted into the host root (see init.sh).
#
# Reads what vmrun.py wrote into SHARE (job.env, topology), finds the NVMe namespaces by their
# controller serial and namespace id, builds the LIO LUNs through configfs, exports one variable
# per device, runs the scenario with bash and leaves its exit code in SHARE/rc.
set -u
share=$1
# shellcheck source=/dev/null
source "$share/job.env" # SCENARIO WORKDIR and the OFFCOPY_* variables

note() { echo "vm-guest: $*"; }
setup_failed() {
    note "SETUP FAILED: $*"
    echo "=== vm: scenario end rc=125 ==="
    echo 125 >"$share/rc"
    exit 125
}

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# --- parse the topology ------------------------------------------------------------------------
# Lines: "nvme KEY=VALUE..." / "lio KEY=VALUE..." (written by vmrun.py, already validated).
nvme_lines=()
lio_lines=()
while read -r kind rest; do
    case $kind in
        nvme) nvme_lines+=("$rest") ;;
        lio) lio_lines+=("$rest") ;;
    esac
done <"$share/topology"

kv() { # kv "k1=v1 k2=v2" KEY -> value
    local tok
    for tok in $1; do
        [[ ${tok%%=*} == "$2" ]] && { echo "${tok#*=}"; return 0; }
    done
    return 1
}

declare -A dev_of # NVME0N1 -> nvme0n1 (for iblock dev=)

# --- NVMe -------------------------------------------------------------------------------------
# The kernel numbers controllers in (asynchronous) probe order and, with native multipath, names
# disks after the subsystem, so nothing is assumed: a controller is found by its serial, a
# namespace by its nsid.
find_ctrl() { # serial -> nvmeX
    local c s
    for c in /sys/class/nvme/nvme*; do
        [[ -e $c/serial ]] || continue
        s=$(<"$c/serial")
        s=${s%% *}
        [[ $s == "$1" ]] && { basename "$c"; return 0; }
    done
    return 1
}
find_ns_disk() { # nvmeX nsid -> nvmeYnZ (the disk users open)
    local ctrl=$1 nsid=$2 d n name
    # Path devices of the controller: nvmeXnZ (no multipath) or nvmeXcXnZ (multipath).
    for d in /sys/class/nvme/"$ctrl"/nvme*; do
        [[ -e $d/nsid ]] || continue
        n=$(<"$d/nsid")
        [[ $n == "$nsid" ]] || continue
        name=$(basename "$d")
        if [[ $name =~ ^nvme([0-9]+)c[0-9]+n([0-9]+)$ ]]; then
            name=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
        fi
        [[ -b /dev/$name ]] && { echo "$name"; return 0; }
    done
    return 1
}

nvme_env=()
for line in "${nvme_lines[@]}"; do
    serial=$(kv "$line" serial)
    nsid=$(kv "$line" nsid)
    var=$(kv "$line" var)
    disk=
    for _ in $(seq 1 200); do
        if ctrl=$(find_ctrl "$serial") && disk=$(find_ns_disk "$ctrl" "$nsid"); then
            break
        fi
        disk=
        sleep 0.1
    done
    [[ -n $disk ]] || setup_failed "NVMe namespace $var (serial $serial nsid $nsid) not found"
    dev_of[$var]=$disk
    export "$var=/dev/$disk"
    nvme_env+=("$var=/dev/$disk")
    gen=ng${disk#nvme}
    if [[ -c /dev/$gen ]]; then
        export "NG${var#NVME}=/dev/$gen"
        nvme_env+=("NG${var#NVME}=/dev/$gen")
    fi
done

# --- LIO --------------------------------------------------------------------------------------
# By hand through configfs (no targetcli). Traps, from DESIGN.md §4: without wwn/vpd_unit_serial
# VPD 0x83 carries no NAA and XCOPY fails; the NAA is derived from the serial's first hex digits,
# so serials must differ early; the loopback nexus must exist before LUNs are linked.
lio_env=()
if [[ ${#lio_lines[@]} -gt 0 ]]; then
    cfg=/sys/kernel/config/target
    [[ -d $cfg/core ]] || setup_failed "no $cfg/core (target_core_mod not loaded?)"
    mkdir -p /tmp/lio
    tpg=$cfg/loopback/naa.5001405000000001/tpgt_1
    mkdir -p "$tpg" || setup_failed "cannot create the tcm_loop target"
    echo naa.5001405000000002 >"$tpg/nexus" || setup_failed "cannot create the nexus"
    i=0
    for line in "${lio_lines[@]}"; do
        name=$(kv "$line" name)
        backstore=$(kv "$line" backstore)
        serial=$(kv "$line" serial)
        lbs=$(kv "$line" lbs || true)
        case $backstore in
            fileio)
                size=$(kv "$line" size)
                bs=$cfg/core/fileio_0/$name
                truncate -s "$size" "/tmp/lio/$name.img"
                mkdir -p "$bs"
                echo "fd_dev_name=/tmp/lio/$name.img,fd_dev_size=$size" >"$bs/control" ||
                    setup_failed "LIO $name: control"
                ;;
            iblock)
                devvar=$(kv "$line" dev)
                disk=${dev_of[$devvar]:-}
                [[ -n $disk ]] || setup_failed "LIO $name: unknown dev=$devvar"
                bs=$cfg/core/iblock_0/$name
                mkdir -p "$bs"
                echo "udev_path=/dev/$disk" >"$bs/control" || setup_failed "LIO $name: control"
                ;;
            *) setup_failed "LIO $name: backstore $backstore" ;;
        esac
        echo "$serial" >"$bs/wwn/vpd_unit_serial" || setup_failed "LIO $name: vpd_unit_serial"
        echo 1 >"$bs/enable" || setup_failed "LIO $name: enable"
        if [[ -n $lbs && $backstore == fileio ]]; then
            echo "$lbs" >"$bs/attrib/block_size" || setup_failed "LIO $name: block_size=$lbs"
        fi
        mkdir -p "$tpg/lun/lun_$i"
        ln -s "$bs" "$tpg/lun/lun_$i/$name" || setup_failed "LIO $name: link lun_$i"
        i=$((i + 1))
    done

    # Find each LUN's disk by its unit serial (VPD 0x80), never by order.
    for line in "${lio_lines[@]}"; do
        name=$(kv "$line" name)
        serial=$(kv "$line" serial)
        var=$(kv "$line" var)
        sd=
        for _ in $(seq 1 200); do
            for d in /sys/block/sd*; do
                [[ -e $d/device/vpd_pg80 ]] || continue
                if tr -d '\000' <"$d/device/vpd_pg80" 2>/dev/null | grep -q "$serial"; then
                    sd=$(basename "$d")
                    break
                fi
            done
            [[ -n $sd && -b /dev/$sd ]] && break
            sd=
            sleep 0.1
        done
        [[ -n $sd ]] || setup_failed "LIO $name (serial $serial): no sd device"
        sg=$(ls "/sys/block/$sd/device/scsi_generic/" 2>/dev/null | head -n1)
        [[ -n $sg && -c /dev/$sg ]] || setup_failed "LIO $name: no sg device for $sd"
        # Clear the power-on / parameters-changed unit attentions.
        for _ in 1 2 3 4; do sg_turs "/dev/$sg" >/dev/null 2>&1 && break; done
        export "${var}_SD=/dev/$sd" "${var}_SG=/dev/$sg"
        lio_env+=("${var}_SD=/dev/$sd" "${var}_SG=/dev/$sg")
    done
fi

note "devices ready at $(uptime_s)s: ${nvme_env[*]} ${lio_env[*]}"
export VM_SHARE=$share
echo "=== vm: scenario begin ==="
cd "$WORKDIR" 2>/dev/null || cd /
bash "$SCENARIO"
rc=$?
sync
echo "=== vm: scenario end rc=$rc at $(uptime_s)s ==="
echo "$rc" >"$share/rc"
exit "$rc"
