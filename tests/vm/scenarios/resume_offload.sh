#!/bin/bash
# Issue 8.8, resumable copies, in the guest, two boots on the same disk images (vm-boots):
#   boot 1: an offloaded NVMe Copy (namespace 1 → 2, cross-namespace) and an offloaded XCOPY (LIO
#           iblock LUNs over namespaces 3 → 4) with --journal, each killed with SIGKILL once its
#           journal holds a commit; the same command again copies only what the journal does not
#           record, offloaded, and ends with identical bytes (O_DIRECT read-back) and no journal.
#           Then both copies again to other destination offsets, and a power cut (the runner kills
#           QEMU) while both run: nothing in the guest's memory or page cache survives.
#   boot 2: the journals (ext4 on namespace 5) recorded only bytes that are at the destination;
#           the same commands copy the rest, identical bytes, journals removed.
# OFFCOPY_RESUME_SIZE (NVMe, default 96M, at most 1G) and OFFCOPY_RESUME_XSIZE (XCOPY, default
# 32M, at most 64M) size the copies; OFFCOPY_RESUME_OPTS and _XOPTS (default "--in-flight 1
# --max-command-blocks 64": 32 KiB per command, so the copy outlasts the journal's first commit)
# the options. OFFCOPY_RESUME_SIZE=1G OFFCOPY_RESUME_OPTS= is the measurement of
# docs/reliability.md. Every run prints RESUME-FACTS lines.
# vm-nvme: ctrl=0 nsid=1 size=1G lbs=512 mssrl=2048 mcl=2048 msrc=15
# vm-nvme: ctrl=0 nsid=2 size=2G lbs=512 mssrl=2048 mcl=2048 msrc=15
# vm-nvme: ctrl=0 nsid=3 size=64M lbs=512
# vm-nvme: ctrl=0 nsid=4 size=128M lbs=512
# vm-nvme: ctrl=0 nsid=5 size=32M lbs=512
# vm-lio: name=lun0 backstore=iblock dev=nvme0n3
# vm-lio: name=lun1 backstore=iblock dev=nvme0n4
# vm-require: OFFCOPY_BIN
# vm-boots: 2
# vm-timeout: 900
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../resume_lib.sh"
require_offcopy
size=${OFFCOPY_RESUME_SIZE:-96M}
xsize=${OFFCOPY_RESUME_XSIZE:-32M}
read -r -a opts <<<"${OFFCOPY_RESUME_OPTS---in-flight 1 --max-command-blocks 64}"
read -r -a xopts <<<"${OFFCOPY_RESUME_XOPTS---in-flight 1 --max-command-blocks 64}"
# The power-cut copies run while the other one starts: 4 KiB commands keep both running for seconds.
read -r -a cut_opts <<<"${OFFCOPY_RESUME_CUT_OPTS---in-flight 1 --max-command-blocks 8}"
bytes=$(to_bytes "$size")
xbytes=$(to_bytes "$xsize")
((bytes <= 1 << 30 && xbytes <= 64 << 20)) || fail "sizes too large for the namespaces"
jdir=/tmp/journals # (the guest root is read-only; /tmp is its tmpfs)
mkdir -p "$jdir"

# The four requests: offloaded only (--mode offload: a fallback would hide a resume that is not
# offloaded), each with its own journal. *_cut are the power-cut ones (other destination offsets).
nvme=("$NVME0N1" "$NVME0N2" "0:0:$size" --mode offload --journal "$jdir/nvme.journal" "${opts[@]}")
nvme_cut=("$NVME0N1" "$NVME0N2" "0:1G:$size" --mode offload --journal "$jdir/nvme-cut.journal" "${cut_opts[@]}")
xcopy=("$LUN0_SD" "$LUN1_SD" "0:0:$xsize" --mode offload --journal "$jdir/xcopy.journal" "${xopts[@]}")
xcopy_cut=("$LUN0_SD" "$LUN1_SD" "0:64M:$xsize" --mode offload --journal "$jdir/xcopy-cut.journal" "${cut_opts[@]}")

# resume NAME BACKEND DST_OFF LEN JOURNAL SRC DST ARGS...: what the interruption left (journal bytes
# as the library reads them, destination bytes equal to the source), then the same command
# `copy SRC DST ARGS` again: exit 0, copies exactly the rest with BACKEND, verified, journal gone,
# identical bytes.
resume() {
    local name=$1 backend=$2 off=$3 len=$4 journal=$5 src=$6 dst=$7 t0 recorded same runs first rc took
    shift 5
    [[ -f $journal ]] || fail "$name: no journal left"
    recorded=$(journal_done_bytes "$@")
    read -r same runs first <<<"$(count_same "$src" 0 "$dst" "$off" "$len")"
    note "$name: journal $(stat -c %s "$journal") bytes recording $recorded done; $same bytes of the destination equal the source ($runs runs differ, the first at $first)"
    ((recorded > 0 && recorded < len)) || fail "$name: the journal records $recorded of $len bytes"
    ((same >= recorded)) || fail "$name: the journal claims $recorded bytes, only $same are at the destination"
    t0=$(now)
    run_rc rc "$OFFCOPY_BIN" copy "$@" --verify --json
    took=$(elapsed "$t0")
    expect_eq "$rc" 0 "$name: exit status of the same command again"
    eval "$(json_vars r "$(report_json)" resumed_bytes bytes_copied verified "backends.$backend.bytes" elapsed_seconds)"
    local b="r_backends_${backend//-/_}_bytes"
    expect_eq "$r_resumed_bytes" "$recorded" "$name: resumed_bytes = what the journal recorded"
    expect_eq "$((r_resumed_bytes + r_bytes_copied))" "$len" "$name: resumed + copied = the request"
    expect_eq "${!b}" "$r_bytes_copied" "$name: the rest offloaded ($backend)"
    expect_eq "$r_verified" true "$name: verified whole"
    [[ -e $journal ]] && fail "$name: the journal was not removed"
    expect_data "same $src 0 $dst $off $len $name: destination = source"
    echo "RESUME-FACTS $name boot=$VM_BOOT size=$len journal_bytes=$recorded dst_same_bytes=$same dst_other_runs=$runs recopied_bytes=$r_bytes_copied resume_s=$took copy_s=$r_elapsed_seconds"
}

# start VAR ARGS...: offload-copy copy ARGS in the background, its pid in VAR.
start() {
    local __var=$1
    shift
    "$OFFCOPY_BIN" copy "$@" --no-progress --json >"/tmp/bg.$__var.out" 2>&1 &
    printf -v "$__var" '%s' "$!"
}

if [[ $VM_BOOT == 1 ]]; then
    mkfs.ext4 -q -F "$NVME0N5" || fail "mkfs.ext4 $NVME0N5"
    mount "$NVME0N5" "$jdir" || fail "mount $NVME0N5"
    note "filling the sources ($size on $NVME0N1, $xsize on $LUN0_SD); destinations are zeros"
    t0=$(now)
    fill_random "$NVME0N1" 0 "$size" seed-resume-nvme
    fill_random "$LUN0_SD" 0 "$xsize" seed-resume-xcopy
    note "filled in $(elapsed "$t0") s"

    for which in nvme xcopy; do
        declare -n req=$which
        note "$which: offload-copy copy ${req[*]}, SIGKILL once its journal holds a commit"
        # vmdata.py polls the journal every millisecond: bash's polling (a fork per look) misses
        # the whole of a 1 GiB NVMe Copy (~1 s).
        killed=$("$PY" -S "$VMDATA" kill-on-commit "$jdir/$which.journal" "/tmp/$which.out" \
            "$OFFCOPY_BIN" copy "${req[@]}" --no-progress --json) ||
            fail "$which: the copy ended before its journal held a commit: $killed"
        read -r took records <<<"$killed"
        note "$which: killed ${took} s after the start, its journal holding $records records"
        unset -n req
    done
    resume nvme-kill9 nvme-copy 0 "$bytes" "$jdir/nvme.journal" "${nvme[@]}"
    resume xcopy-kill9 scsi-xcopy 0 "$xbytes" "$jdir/xcopy.journal" "${xcopy[@]}"

    note "both copies again, to other offsets, and a power cut once both journals hold a commit"
    start pid2 "${xcopy_cut[@]}" # the slower one first
    wait_records 300 "$pid2" "$jdir/xcopy-cut.journal"
    start pid1 "${nvme_cut[@]}"
    wait_records 300 "$pid1" "$jdir/nvme-cut.journal"
    sleep 0.3 # the first commit's fdatasync done; the next one is 1 s after it
    kill -0 "$pid1" && kill -0 "$pid2" || { cat /tmp/bg.*.out; fail "a copy ended before the power cut"; }
    power_cut
fi

note "boot $VM_BOOT: after the power cut"
mount "$NVME0N5" "$jdir" || fail "mount $NVME0N5 after the power cut"
resume nvme-power-cut nvme-copy 1G "$bytes" "$jdir/nvme-cut.journal" "${nvme_cut[@]}"
resume xcopy-power-cut scsi-xcopy 64M "$xbytes" "$jdir/xcopy-cut.journal" "${xcopy_cut[@]}"
umount "$jdir"
note "resume_offload: ok"
