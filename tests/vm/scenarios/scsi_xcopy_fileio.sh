#!/bin/bash
# SCSI EXTENDED COPY (LID1) through offload-copy between and within LIO fileio LUNs (512 B blocks):
# scattered extents, a copy past LIO's one-segment / 65535-block limits with the minimal command
# count in --json, sg nodes as endpoints, a same-LU overlapping (memmove) copy, identical bytes to
# sg_xcopy, an out-of-range destination refused before anything is written, and token copy
# refused by LIO (fallback in auto, exit 3 in offload).
# vm-lio: name=lun0 backstore=fileio size=128M
# vm-lio: name=lun1 backstore=fileio size=128M
# vm-require: OFFCOPY_BIN
# vm-timeout: 420
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
src=$LUN0_SD
dst=$LUN1_SD
fill_random "$src" 0 64M seed-scsi

note "probe: scsi-xcopy with LIO's limits on the disk and the sg node"
for dev in "$src" "$LUN0_SG"; do
    offcopy probe "$dev" --json
    eval "$(json_vars p "$(report_json)" size_bytes logical_block_bytes offload)"
    expect_eq "$p_size_bytes" $((128 << 20)) "$dev size_bytes"
    expect_eq "$p_logical_block_bytes" 512 "$dev logical_block_bytes"
    "$PY" -S -c '
import json, sys
off = {e["backend"]: e for e in json.loads(sys.argv[1])}
x, t = off["scsi-xcopy"], off["scsi-token"]
assert x["available"], x
assert x["limits"]["max_segments_per_command"] == 1, x
assert x["limits"]["max_segment_blocks"] == 65535, x
assert not t["available"] and "0x8F" in t["reason"], t
print("ok: scsi-xcopy available (1 segment x 65535 blocks), scsi-token refused:", t["reason"])
' "$p_offload" || fail "probe $dev: unexpected offload entries"
done

note "12 scattered 256 KiB extents + one 40 MiB extent (past 65535 blocks), --mode offload"
ext=()
for i in $(seq 0 11); do ext+=("$((i * 2 + 44))M:$((64 + (11 - i) * 2))M:256K"); done
ext+=("0:0:40M")
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" "${ext[@]}" --mode offload --json
expect_eq "$rc" 0 "exit status"
report=$(report_json)
check_copy_report "$report" $((3 * 1024 * 1024 + 40 * 1024 * 1024))
# Minimal for LIO (1 segment, <= 65535 blocks): 12 + ceil(81920 / 65535) = 14.
eval "$(json_vars r "$report" backends.scsi-xcopy.bytes backends.scsi-xcopy.commands)"
expect_eq "$r_backends_scsi_xcopy_bytes" $((43 << 20)) "backends.scsi-xcopy.bytes"
expect_eq "$r_backends_scsi_xcopy_commands" 14 "backends.scsi-xcopy.commands (minimal)"
expect_eq "$(sum_direct "$dst" 0 40M)" "$(sum_direct "$src" 0 40M)" "40 MiB extent"
for i in 0 5 11; do
    expect_eq "$(sum_direct "$dst" $((64 + (11 - i) * 2))M 256K)" "$(sum_direct "$src" $((i * 2 + 44))M 256K)" "extent $i"
done
expect_eq "$(sum_direct "$dst" 40M 24M)" "$(sum_zero 24M)" "gap 40M..64M untouched"

note "sg nodes as endpoints"
offcopy copy "$LUN0_SG" "$LUN1_SG" 8M:100M:3M --mode offload --json
expect_eq "$(backend_bytes "$(report_json)" scsi-xcopy)" $((3 << 20)) "sg->sg scsi-xcopy bytes"
expect_eq "$(sum_direct "$dst" 100M 3M)" "$(sum_direct "$src" 8M 3M)" "sg->sg extent"

note "within one LU: a forward copy and an overlapping (memmove) copy"
offcopy copy "$dst" "$dst" 0:110M:2M --mode offload --json
expect_eq "$(backend_bytes "$(report_json)" scsi-xcopy)" $((2 << 20)) "same-LU scsi-xcopy bytes"
expect_eq "$(sum_direct "$dst" 110M 2M)" "$(sum_direct "$src" 0 2M)" "same-LU copy"
want=$(sum_direct "$dst" 1M 4M)
offcopy copy "$dst" "$dst" 1M:2M:4M --mode offload --json
expect_eq "$(sum_direct "$dst" 2M 4M)" "$want" "overlapping same-LU copy (memmove order)"

note "offcopy vs sg_xcopy: identical bytes"
sg_xcopy if="$LUN0_SG" of="$LUN1_SG" bs=512 skip=$((16 << 11)) seek=$((112 << 11)) count=$((4 << 11)) ||
    fail "sg_xcopy exited $?"
offcopy copy "$src" "$dst" 16M:116M:4M --mode offload --json
expect_eq "$(sum_direct "$dst" 116M 4M)" "$(sum_direct "$dst" 112M 4M)" "offcopy == sg_xcopy"
expect_eq "$(sum_direct "$dst" 116M 4M)" "$(sum_direct "$src" 16M 4M)" "== source"

note "out-of-range destination: refused before anything is written (LIO would say COPY ABORTED)"
before=$(sum_direct "$dst" 120M 8M)
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:127M:2M --mode offload --json
expect_eq "$rc" 2 "exit status (bad input)"
expect_eq "$(sum_direct "$dst" 120M 8M)" "$before" "destination unchanged"

note "token copy: LIO has no VPD 0x8F"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:120M:1M --mode offload --backend scsi-token --json
expect_eq "$rc" 3 "token copy, --mode offload"
expect_eq "$(sum_direct "$dst" 120M 8M)" "$before" "nothing written"
note "token copy sent anyway (OFFCOPY_SCSI_TOKEN_FORCE=1): LIO answers invalid opcode"
export OFFCOPY_SCSI_TOKEN_FORCE=1
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:120M:1M --mode offload --backend scsi-token --json
expect_eq "$rc" 3 "forced token copy, --mode offload"
grep -q "Invalid command operation code" "$RUN_ERR" "$RUN_OUT" || fail "no invalid-opcode sense in the error"
expect_eq "$(sum_direct "$dst" 120M 8M)" "$before" "nothing written"
run_rc rc "$OFFCOPY_BIN" copy "$src" "$dst" 0:120M:1M --backend scsi-token --backend buffered --json
expect_eq "$rc" 0 "forced token copy, --mode auto"
report=$(report_json)
check_copy_report "$report" $((1 << 20))
expect_eq "$(backend_bytes "$report" buffered)" $((1 << 20)) "fell back to buffered"
eval "$(json_vars r "$report" fallback_reason)"
note "fallback_reason: $r_fallback_reason"
[[ -n $r_fallback_reason ]] || fail "no fallback_reason"
unset OFFCOPY_SCSI_TOKEN_FORCE
expect_eq "$(sum_direct "$dst" 120M 1M)" "$(sum_direct "$src" 0 1M)" "fallback bytes"
note "scsi_xcopy_fileio: ok"
