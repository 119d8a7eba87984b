# tests/vm/nvme_lib.sh — helpers for the NVMe Copy scenarios (tests/vm/scenarios/nvme_*.sh).
# Source after lib.sh.

# nvme_probe_get DEV PATH: a field of the nvme-copy entry of `offload-copy probe DEV --json`
# (PATH is dotted: "available", "limits.max_segment_blocks", "details.ocfs"); top-level fields
# with a leading "/" ("/size_bytes").
nvme_probe_get() {
    "$OFFCOPY_BIN" probe "$1" --json | "$PY" -c '
import json, sys
j = json.load(sys.stdin)
path = sys.argv[1]
if path.startswith("/"):
    v = j
    path = path[1:]
else:
    v = next((m for m in j.get("offload", []) if m.get("backend") == "nvme-copy"), None)
    if v is None:
        sys.exit(1)
for p in path.split("."):
    v = v[p]
print(v if isinstance(v, str) else json.dumps(v))
' "$2"
}

# nvme_min_commands LBS MSRC0 MSSRL MCL EXTENT...: the fewest NVMe Copy commands for the extents
# (bytes, "S:D:L" with the CLI's suffixes), by greedy packing of destination-contiguous runs after
# merging extents adjacent on both sides (DESIGN.md §2). Extents on stdin when none are given.
nvme_min_commands() {
    local lbs=$1 msrc=$2 mssrl=$3 mcl=$4
    shift 4
    { if (($#)); then printf '%s\n' "$@"; else cat; fi; } | "$PY" -c '
import sys
lbs, msrc, mssrl, mcl = (int(x) for x in sys.argv[1:5])
def num(t):
    m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "s": 512}
    return int(t[:-1]) * m[t[-1]] if t[-1] in m else int(t)
ext = []
for line in sys.stdin:
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    s, d, l = (num(x) for x in line.split(":"))
    ext.append([s // lbs, d // lbs, l // lbs])
merged = []
for e in ext:
    if merged and merged[-1][0] + merged[-1][2] == e[0] and merged[-1][1] + merged[-1][2] == e[1]:
        merged[-1][2] += e[2]
    else:
        merged.append(list(e))
cmds = 0
ranges = blocks = 0
next_dst = None
for s, d, l in merged:
    if next_dst != d:
        cmds += 1
        ranges = blocks = 0
    next_dst = d + l
    while l > 0:
        if ranges == msrc + 1 or blocks == mcl:
            cmds += 1
            ranges = blocks = 0
        n = min(l, mssrl, mcl - blocks)
        ranges += 1
        blocks += n
        l -= n
print(cmds)
' "$lbs" "$msrc" "$mssrl" "$mcl"
}
