#!/bin/bash
# tests/vm/guest.sh SHARE — runs inside the guest, chrooted into the host root (see init.sh).
#
# Reads what vmrun.py wrote into SHARE (job.env, scenarios, topology), finds the NVMe namespaces
# by their controller serial and namespace id, builds the LIO LUNs through configfs, exports one
# variable per device, then runs each scenario with bash, in order, giving every device back its
# boot state between two of them. Each scenario's exit code goes to SHARE/results ("NAME RC"), the
# overall one (fail > skip > pass) to SHARE/rc.
set -u
share=$1
# shellcheck source=/dev/null
source "$share/job.env" # WORKDIR and the OFFCOPY_* variables

# NAME TIMEOUT PATH per line.
scenario_names=()
scenario_timeouts=()
scenario_paths=()
while read -r n t p; do
    scenario_names+=("$n")
    scenario_timeouts+=("$t")
    scenario_paths+=("$p")
done <"$share/scenarios"

note() { echo "vm-guest: $*"; }
setup_failed() {
    note "SETUP FAILED: $*"
    local n
    for n in "${scenario_names[@]}"; do echo "$n 125" >>"$share/results"; done
    echo 125 >"$share/rc"
    exit 125
}

# Every program started in the guest costs 0.1-0.3 s under emulation on a shared host (exec, dynamic
# linking, 9p lookups): the setup and the resets below use bash builtins where a tool would only
# parse text (basename, cut, tr, grep, sort, seq, ls, tac), and start the tools that do the work.
uptime_s() { local u _; read -r u _ </proc/uptime; echo "$u"; }

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
declare -A lio_sd # LUN0 -> /dev/sdX
declare -A has_metadata # NVME0N4 -> 1 for namespaces with metadata / PI

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
        [[ $s == "$1" ]] && { echo "${c##*/}"; return 0; }
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
        name=${d##*/}
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
    for ((try = 0; try < 200; try++)); do
        if ctrl=$(find_ctrl "$serial") && disk=$(find_ns_disk "$ctrl" "$nsid"); then
            break
        fi
        disk=
        sleep 0.1
    done
    [[ -n $disk ]] || setup_failed "NVMe namespace $var (serial $serial nsid $nsid) not found"
    dev_of[$var]=$disk
    kv "$line" metadata >/dev/null && has_metadata[$var]=1
    export "$var=/dev/$disk"
    nvme_env+=("$var=/dev/$disk")
    gen=ng${disk#nvme}
    if [[ -c /dev/$gen ]]; then
        export "NG${var#NVME}=/dev/$gen"
        nvme_env+=("NG${var#NVME}=/dev/$gen")
    fi
done

# vpd_text FILE: a sysfs VPD page without its NUL bytes (bash drops them, and warns).
vpd_text() {
    local part text=
    while IFS= read -r -d '' part; do text+=$part; done <"$1"
    echo "$text$part"
}

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
    # paths=2: the same backstore also behind a second tcm_loop target (its own SCSI host), so the
    # guest sees two disks for one logical unit: two paths, as dm-multipath expects them.
    tpg2=$cfg/loopback/naa.5001405000000003/tpgt_1
    i=0
    i2=0
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
        if [[ $(kv "$line" paths || true) == 2 ]]; then
            if [[ ! -d $tpg2 ]]; then
                mkdir -p "$tpg2" || setup_failed "cannot create the second tcm_loop target"
                echo naa.5001405000000004 >"$tpg2/nexus" || setup_failed "cannot create the second nexus"
            fi
            mkdir -p "$tpg2/lun/lun_$i2"
            ln -s "$bs" "$tpg2/lun/lun_$i2/$name" || setup_failed "LIO $name: link path 2 lun_$i2"
            i2=$((i2 + 1))
        fi
    done

    # Find each LUN's disk by its unit serial (VPD 0x80), never by order; a LUN with two paths has
    # two disks with that serial, path 1 on the first target's SCSI host (the lower host number).
    for line in "${lio_lines[@]}"; do
        name=$(kv "$line" name)
        serial=$(kv "$line" serial)
        var=$(kv "$line" var)
        want=1
        [[ $(kv "$line" paths || true) == 2 ]] && want=2
        sds=()
        for ((try = 0; try < 200; try++)); do
            sds=()
            n=0
            for d in /sys/block/sd*; do
                [[ -e $d/device/vpd_pg80 ]] || continue
                [[ $(vpd_text "$d/device/vpd_pg80") == *"$serial"* ]] || continue
                [[ -b /dev/${d##*/} ]] || continue
                found=("$d"/device/scsi_device/*) # one entry, named H:C:T:L
                hctl=${found[0]##*/}
                [[ $hctl == *:* ]] || continue
                # Indexed by SCSI host number (then name order): "${sds[@]}" lists them sorted.
                sds[${hctl%%:*} * 1000 + n++]=${d##*/}
            done
            [[ ${#sds[@]} -ge $want ]] && break
            sleep 0.1
        done
        [[ ${#sds[@]} -ge $want ]] || setup_failed "LIO $name (serial $serial): ${#sds[@]} of $want sd devices"
        sds=("${sds[@]}")
        for ((p = 1; p <= want; p++)); do
            sd=${sds[$((p - 1))]}
            found=("/sys/block/$sd/device/scsi_generic/"*)
            sg=${found[0]##*/}
            [[ -n $sg && -c /dev/$sg ]] || setup_failed "LIO $name: no sg device for $sd"
            # Clear the power-on / parameters-changed unit attentions.
            for _ in 1 2 3 4; do sg_turs "/dev/$sg" >/dev/null 2>&1 && break; done
            suffix=
            ((p > 1)) && suffix=$p
            lio_sd[$var$suffix]=/dev/$sd
            export "${var}_SD$suffix=/dev/$sd" "${var}_SG$suffix=/dev/$sg"
            lio_env+=("${var}_SD$suffix=/dev/$sd" "${var}_SG$suffix=/dev/$sg")
        done
    done
fi

note "devices ready at $(uptime_s)s: ${nvme_env[*]} ${lio_env[*]}"
export VM_SHARE=$share

# --- between two scenarios: every device back to its boot state -------------------------------
# Nothing mounted from the scenario devices, no partitions, all zeroes: NVMe namespaces through
# Write Zeroes (blkdiscard -z; QEMU turns it into a zeroed range of the image file, cheap), except
# namespaces with metadata/PI, which get zeroes written through the block layer (the kernel
# generates their PI: after Write Zeroes a QEMU 10 namespace with 64-bit guard PI fails the
# kernel's PI check on read, EILSEQ), and fileio LUNs by truncating their tmpfs file; then the
# guest's cached pages are dropped. Controller state (features such as Host Behavior Support) is
# not reset: a scenario that depends on it sets it.
reset_devices() {
    local t0 src mnt rest var d line name i mounts=() dm_left=0 pids=() failed=0
    t0=${EPOCHREALTIME/./}
    # Device-mapper devices a scenario left (LVM volumes, dmsetup tables, multipath maps) hold the
    # namespaces and LUNs below them: remove them first (their file systems are unmounted below).
    # Any dm disk, or any node dmsetup made in /dev/mapper besides control, means there are some.
    for d in /sys/block/dm-* /dev/mapper/*; do
        [[ -e $d && $d != /dev/mapper/control ]] && dm_left=1
    done
    mapfile -t mounts </proc/mounts
    if ((dm_left)); then
        for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do # last mounted first
            read -r src mnt rest <<<"${mounts[i]}"
            [[ $src == /dev/mapper/* || $src == /dev/dm-* ]] && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
        done
        DM_DISABLE_UDEV=1 dmsetup remove_all -f >/dev/null 2>&1 || true
        [[ -z $(dmsetup ls 2>/dev/null | grep -v '^No devices') ]] || { note "reset: dm devices left: $(dmsetup ls)"; return 1; }
        mapfile -t mounts </proc/mounts
    fi
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        read -r src mnt rest <<<"${mounts[i]}"
        case $src in
            /dev/nvme* | /dev/sd* | /dev/loop* | /dev/mapper/*)
                umount "$mnt" 2>/dev/null || umount -l "$mnt" || return 1
                ;;
        esac
    done
    for d in /sys/block/loop*; do # loop devices over our devices or over guest tmpfs files
        [[ -e $d/loop/backing_file ]] && losetup -d "/dev/${d##*/}" 2>/dev/null
    done
    for line in "${lio_lines[@]}"; do
        [[ $(kv "$line" backstore) == fileio ]] || continue
        name=$(kv "$line" name)
        : >"/tmp/lio/$name.img" && truncate -s "$(kv "$line" size)" "/tmp/lio/$name.img" || return 1
    done
    # The namespaces at once, one job each (the guest has two CPUs; QEMU does the zeroing).
    for var in "${!dev_of[@]}"; do
        reset_namespace "${dev_of[$var]}" "${has_metadata[$var]:-}" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=1; done
    # Then the LUNs' cached pages (an iblock LUN's namespace is zeroed by now).
    pids=()
    for var in "${!lio_sd[@]}"; do
        blockdev --flushbufs "${lio_sd[$var]}" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || failed=1; done
    ((failed == 0)) || return 1
    i=$((${EPOCHREALTIME/./} - t0))
    note "devices reset in $((i / 1000000)).$((i / 100000 % 10))s"
}

# reset_namespace NAME METADATA: /dev/NAME zeroed, its partitions gone, its cached pages dropped.
reset_namespace() {
    local dev=/dev/$1 out parts
    if [[ -n $2 ]]; then
        out=$(dd if=/dev/zero of="$dev" bs=1M oflag=direct status=none 2>&1)
        [[ $out == *"No space left"* || -z $out ]] || { note "reset: zeroing $dev: $out"; return 1; }
    else
        # -f: a partition table or file system signature would make blkdiscard refuse.
        out=$(blkdiscard -f -z "$dev" 2>&1) || { note "reset: blkdiscard -z $dev: $out"; return 1; }
    fi
    # The partitions the kernel knows of (NAMEpN in sysfs) go with the zeroed table; with none
    # there is nothing to re-read.
    parts=(/sys/block/"$1"/"$1"p*)
    [[ -e ${parts[0]} ]] && { blockdev --rereadpt "$dev" 2>/dev/null || true; }
    blockdev --flushbufs "$dev"
}

overall=0
for i in "${!scenario_names[@]}"; do
    name=${scenario_names[$i]}
    if ((i > 0)); then
        if ! reset_devices; then
            note "RESET FAILED before $name"
            for n in "${scenario_names[@]:$i}"; do echo "$n 125" >>"$share/results"; done
            overall=125
            break
        fi
    fi
    export SCENARIO=${scenario_paths[$i]} VM_SCENARIO_NAME=$name
    echo "=== vm: scenario begin $name ==="
    # Each scenario's own vm-timeout bounds it here too, so a hung one fails alone (exit 124).
    (cd "$WORKDIR" 2>/dev/null || cd /; exec timeout -k 10 "${scenario_timeouts[$i]}" bash "$SCENARIO" </dev/null)
    rc=$?
    sync
    echo "=== vm: scenario end $name rc=$rc at $(uptime_s)s ==="
    echo "$name $rc" >>"$share/results"
    if [[ $rc != 0 && $rc != 77 ]]; then
        overall=$rc
    elif [[ $rc == 77 && $overall == 0 ]]; then
        overall=77
    fi
done
echo "$overall" >"$share/rc"
exit "$overall"
