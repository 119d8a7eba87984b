#!/bin/bash
# A 512-byte LUN and a 4096-byte LUN on one LIO target: XCOPY block→block needs equal block sizes,
# so --mode auto falls back with that reason (bytes still right), --mode offload refuses before
# writing anything; two 4096-byte LUNs offload normally.
# vm-lio: name=lun0 backstore=fileio size=64M
# vm-lio: name=lun1 backstore=fileio size=64M lbs=4096
# vm-lio: name=lun2 backstore=fileio size=64M lbs=4096
# vm-require: OFFCOPY_BIN
# vm-timeout: 300
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_offcopy
expect_eq "$(dev_lbs "$LUN0_SD")" 512 "lun0 block size"
expect_eq "$(dev_lbs "$LUN1_SD")" 4096 "lun1 block size"
fill_random "$LUN0_SD" 0 8M seed-mismatch

note "probe of the 4096-byte LUN (READ CAPACITY(16) on the sg node)"
offcopy probe "$LUN1_SG" --json
eval "$(json_vars p "$(report_json)" logical_block_bytes)"
expect_eq "$p_logical_block_bytes" 4096 "sg node logical_block_bytes"

note "512 → 4096, --mode auto: fallback with the reason"
offcopy copy "$LUN0_SD" "$LUN1_SD" 0:4M:4M --json
report=$(report_json)
check_copy_report "$report" $((4 << 20))
expect_eq "$(backend_bytes "$report" scsi-xcopy)" 0 "no XCOPY"
note "the plan says why scsi-xcopy was not chosen"
offcopy plan "$LUN0_SD" "$LUN1_SD" 0:4M:4M --json
"$PY" -S -c '
import json, sys
c = {e["backend"]: e for e in json.loads(sys.argv[1])["considered"]}
x = c["scsi-xcopy"]
assert not x["chosen"] and "512 vs 4096" in x["reason"], x
print("ok: scsi-xcopy not chosen:", x["reason"])
' "$(report_json)" || fail "plan does not give the block-size reason for scsi-xcopy"
note "with scsi-xcopy as the only offload backend, fallback_reason names the block sizes"
offcopy copy "$LUN0_SD" "$LUN1_SD" 0:4M:4M --backend scsi-xcopy --backend buffered --json
eval "$(json_vars r "$(report_json)" fallback_reason bytes_copied)"
note "fallback_reason: $r_fallback_reason"
expect_eq "$r_bytes_copied" $((4 << 20)) "bytes_copied"
[[ $r_fallback_reason == *"512 vs 4096"* ]] || fail "fallback_reason does not name the block sizes: $r_fallback_reason"
expect_eq "$(sum_direct "$LUN1_SD" 4M 4M)" "$(sum_random 4M seed-mismatch)" "fallback bytes"

note "512 → 4096, --mode offload: refused, nothing written"
before=$(sum_direct "$LUN1_SD" 16M 4M)
run_rc rc "$OFFCOPY_BIN" copy "$LUN0_SD" "$LUN1_SD" 0:16M:4M --mode offload --json
expect_eq "$rc" 3 "--mode offload exit status (only the mode forbids the fallback)"
expect_eq "$(json_get "$(report_json)" outcome)" offload-impossible "--mode offload outcome"
expect_eq "$(sum_direct "$LUN1_SD" 16M 4M)" "$before" "nothing written"

note "4096 → 4096: XCOPY"
offcopy copy "$LUN1_SD" "$LUN2_SD" 4M:8M:4M --mode offload --json
report=$(report_json)
check_copy_report "$report" $((4 << 20))
eval "$(json_vars r "$report" backends.scsi-xcopy.commands)"
expect_eq "$r_backends_scsi_xcopy_commands" 1 "one XCOPY command (1024 blocks of 4 KiB)"
expect_eq "$(sum_direct "$LUN2_SD" 8M 4M)" "$(sum_random 4M seed-mismatch)" "4096→4096 bytes"
note "scsi_block_size_mismatch: ok"
