# tests/vm/nvme_lib.sh — helpers for the NVMe Copy scenarios (tests/vm/scenarios/nvme_*.sh).
# Source after lib.sh.

# nvme_probe_get DEV PATH: a field of the nvme-copy entry of `offload-copy probe DEV --json`
# (PATH is dotted: "available", "limits.max_segment_blocks", "details.ocfs"); top-level fields
# with a leading "/" ("/size_bytes").
nvme_probe_get() {
    "$OFFCOPY_BIN" probe "$1" --json | "$PY" -S -c '
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
    { if (($#)); then printf '%s\n' "$@"; else cat; fi; } | "$PY" -S -c '
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

# --- cross-namespace Copy (tests/vm/scenarios/nvme_xns_*.sh) -----------------------------------

# nvme_ctrl_of DEV: the controller char device (/dev/nvmeX) behind a namespace device, by the
# controller serial (a multipath head's sysfs parent is the subsystem, not the controller).
nvme_ctrl_of() {
    local serial c
    serial=$(nvme id-ctrl "$1" -o json | "$PY" -S -c 'import json,sys; print(json.load(sys.stdin)["sn"].strip())')
    for c in /sys/class/nvme/nvme*; do
        [[ $(tr -d ' ' <"$c/serial") == "$serial" ]] && { echo "/dev/$(basename "$c")"; return 0; }
    done
    return 1
}

# nvme_wait_live CTRL: wait (up to 10 s) until /dev/nvmeX is live again after a reset.
nvme_wait_live() {
    local s
    s=/sys/class/nvme/$(basename "$1")/state
    for _ in $(seq 100); do
        [[ $(<"$s") == live ]] && return 0
        sleep 0.1
    done
    fail "$1 did not come back live after the reset"
}

# hbs_get CTRL OUT: the Host Behavior Support structure (Get Features 16h, 512 bytes) into OUT.
hbs_get() {
    nvme get-feature "$1" -f 0x16 -l 512 -b >"$2" || fail "Get Features 16h on $1"
    [[ $(stat -c %s "$2") == 512 ]] || fail "Get Features 16h: $(stat -c %s "$2") bytes, not 512"
}

# hbs_bytes CTRL OFFSET...: the structure's bytes at OFFSET..., in decimal, space separated.
# CDFE is bytes 4-5 (NVMe Base 2.1, Host Behavior Support), LBAFEE byte 2. No python: fast enough
# to poll while a copy runs.
hbs_bytes() {
    local dev=$1 off out=() f=/tmp/hbs.$BASHPID.bin
    shift
    hbs_get "$dev" "$f"
    for off in "$@"; do
        out+=("$(od -A n -t u1 -j "$off" -N 1 "$f" | tr -d ' ')")
    done
    echo "${out[*]}"
}

# hbs_put_byte CTRL OFFSET VALUE: read-modify-write of one byte of the structure (Set Features 16h).
# CTRL is the controller (/dev/nvmeX): through a namespace nvme-cli sends its NSID and QEMU
# answers 0x410f, Feature Not Namespace Specific.
hbs_put_byte() {
    local f=/tmp/hbs.$BASHPID.new
    hbs_get "$1" "$f"
    printf "\\x$(printf %02x "$(($3))")" | dd of="$f" bs=1 seek="$2" count=1 conv=notrunc status=none
    nvme set-feature "$1" -f 0x16 -l 512 -d "$f" >/dev/null || fail "Set Features 16h on $1"
}

# copy_ranges OUT NSID:SLBA:BLOCKS...: Copy source range entries, format 2h (32 bytes each: 0-3
# SNSID, 8-15 SLBA, 16-17 NLB 0-based; NVM Command Set spec, Copy command), written from the spec's
# offsets here, independently of offcopy's encoder.
copy_ranges() {
    "$PY" -S -c '
import struct, sys
out = b""
for t in sys.argv[2:]:
    ns, slba, n = (int(x) for x in t.split(":"))
    e = bytearray(32)
    struct.pack_into("<I", e, 0, ns)
    struct.pack_into("<Q", e, 8, slba)
    struct.pack_into("<H", e, 16, n - 1)
    out += bytes(e)
open(sys.argv[1], "wb").write(out)' "$@"
}

# raw_copy DEV NSID SDLBA FORMAT RANGEFILE: one Copy through nvme-cli's io-passthru (CDW10/11
# SDLBA, CDW12 bits 7:0 NR 0-based, 11:8 format); prints nvme-cli's answer, returns its status.
raw_copy() {
    local n
    n=$(($(stat -c %s "$5") / 32))
    nvme io-passthru "$1" -n "$2" -o 0x19 -w -l "$(stat -c %s "$5")" -i "$5" \
        --cdw10=$(($3 & 0xffffffff)) --cdw11=$(($3 >> 32)) --cdw12=$(((n - 1) | ($4 << 8))) 2>&1
}
