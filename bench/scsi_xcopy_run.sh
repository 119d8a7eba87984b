#!/bin/bash
# Host side of the SCSI XCOPY benchmark: boots the guest rig with bench/scsi_xcopy_bench.sh and
# replaces the "SCSI XCOPY" section of docs/benchmarks.md with the measured table.
#     OFFCOPY_BIN=build/offload-copy bench/scsi_xcopy_run.sh [CACHE_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-$here/build/vm-cache}
log=$(mktemp /tmp/scsi-xcopy-bench.XXXXXX.log)
: "${OFFCOPY_BIN:?set OFFCOPY_BIN to the offload-copy binary}"
OFFCOPY_BIN=$(realpath "$OFFCOPY_BIN") python3 "$here/tests/vm/vmrun.py" --cache "$cache" \
    --scenario "$here/bench/scsi_xcopy_bench.sh" --log "$log" --timeout 900
table=$(sed -n '/=== bench-md begin ===/,/=== bench-md end ===/p' "$log" | sed '1d;$d' |
    sed 's/^\[ *[0-9.]*\] //' | tr -d '\r')
[[ -n $table ]] || { echo "no table in $log" >&2; exit 1; }
doc=$here/docs/benchmarks.md
[[ -f $doc ]] || printf '# Benchmarks\n' >"$doc"
python3 - "$doc" "$table" <<'PY'
import sys
path, table = sys.argv[1], sys.argv[2]
begin, end = "<!-- scsi-xcopy-bench begin -->", "<!-- scsi-xcopy-bench end -->"
section = (f"{begin}\n## SCSI EXTENDED COPY (LIO, guest)\n\nScript: `bench/scsi_xcopy_run.sh` "
           f"(guest part `bench/scsi_xcopy_bench.sh`).\n\n{table}\n{end}\n")
text = open(path).read()
if begin in text and end in text:
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end) + 1:]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
echo "updated $doc (log: $log)"
