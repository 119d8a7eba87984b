# tests/vm/lib.sh — helpers for guest rig scenarios. Source it first thing:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Scenarios run inside the guest, chrooted into the host root, as root, with bash. Exit 0 = pass,
# 77 = skip, anything else = fail. Data is always checked by reading the device back with O_DIRECT
# (an offloaded copy bypasses the page cache; a buffered read can return stale data).
set -euo pipefail

PY=/usr/bin/python3

note() { echo "--- $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
skip() {
    echo "SKIP: $*" >&2
    exit 77
}

# expect_eq ACTUAL EXPECTED [WHAT]
expect_eq() {
    if [[ "$1" != "$2" ]]; then
        fail "${3:-value}: expected '$2', got '$1'"
    fi
    echo "ok: ${3:-value} = $2"
}

# expect_ne ACTUAL UNEXPECTED [WHAT]
expect_ne() {
    if [[ "$1" == "$2" ]]; then
        fail "${3:-value}: must not be '$2'"
    fi
    echo "ok: ${3:-value} != $2"
}

# to_bytes 64M -> 67108864 (K M G T = powers of 1024, s = 512-byte sectors)
to_bytes() {
    local n=${1%[KMGTs]} u=${1##*[0-9]}
    case $u in
        "") echo "$n" ;;
        K) echo $((n << 10)) ;;
        M) echo $((n << 20)) ;;
        G) echo $((n << 30)) ;;
        T) echo $((n << 40)) ;;
        s) echo $((n * 512)) ;;
        *) fail "bad size $1" ;;
    esac
}

# random_stream LEN SEED [SUMFILE]: LEN deterministic pseudo-random bytes on stdout; with SUMFILE,
# also leaves their sha256 there (generation is the slow part in the emulated guest: do it once).
random_stream() {
    "$PY" -c '
import hashlib, random, sys
n, seed = int(sys.argv[1]), sys.argv[2]
r = random.Random(seed)
h = hashlib.sha256()
out = sys.stdout.buffer
while n > 0:
    k = min(n, 1 << 20)
    b = r.randbytes(k)
    out.write(b)
    h.update(b)
    n -= k
out.flush()
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as f:
        f.write(h.hexdigest() + "\n")
' "$(to_bytes "$1")" "$2" "${@:3}"
}

_sum_cache() { # LEN SEED -> path of the cached sha256 of random_stream LEN SEED
    mkdir -p /tmp/.vm-sums
    echo "/tmp/.vm-sums/$(to_bytes "$1")-$(printf '%s' "$2" | sha256sum | cut -c1-16)"
}

# fill_random DEV OFFSET LEN SEED: write LEN pseudo-random bytes (seeded) at byte OFFSET, O_DIRECT.
# OFFSET and LEN must be multiples of the logical block size.
fill_random() {
    local dev=$1 off len
    off=$(to_bytes "$2")
    len=$(to_bytes "$3")
    random_stream "$len" "$4" "$(_sum_cache "$len" "$4")" |
        dd of="$dev" bs=1M seek="$off" count="$len" iflag=fullblock,count_bytes \
            oflag=direct,seek_bytes conv=notrunc,fsync status=none
}

# sum_random LEN SEED: sha256 of what fill_random LEN SEED writes.
sum_random() {
    local cache
    cache=$(_sum_cache "$1" "$2")
    if [[ -s $cache ]]; then
        cat "$cache"
    else
        random_stream "$1" "$2" | sha256sum | cut -d' ' -f1
    fi
}

# sum_direct DEV OFFSET LEN: sha256 of LEN bytes at OFFSET, read with O_DIRECT.
sum_direct() {
    local dev=$1 off len
    off=$(to_bytes "$2")
    len=$(to_bytes "$3")
    dd if="$dev" bs=1M skip="$off" count="$len" iflag=direct,skip_bytes,count_bytes status=none |
        sha256sum | cut -d' ' -f1
}

# sum_zero LEN: sha256 of LEN zero bytes.
sum_zero() {
    head -c "$(to_bytes "$1")" /dev/zero | sha256sum | cut -d' ' -f1
}

# json_get JSON PATH: value at a dotted PATH (keys or list indexes; "a.b.0.c"). Strings print raw,
# everything else as JSON; a missing key prints nothing and returns 1.
json_get() {
    "$PY" -c '
import json, sys
v = json.loads(sys.argv[1])
for p in sys.argv[2].split(".") if sys.argv[2] else []:
    try:
        v = v[int(p)] if isinstance(v, list) else v[p]
    except (KeyError, IndexError, ValueError, TypeError):
        sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}

# json_vars PREFIX JSON PATH...: shell assignments PREFIX_<path with . -> _>=VALUE for eval, one
# python start for many fields (each start costs ~1 s in the emulated guest). Missing -> empty.
#     eval "$(json_vars r "$report" bytes_copied error backends.nvme-copy.bytes)"; echo "$r_bytes_copied"
json_vars() {
    "$PY" -c '
import json, re, shlex, sys
prefix, doc = sys.argv[1], json.loads(sys.argv[2])
for path in sys.argv[3:]:
    v = doc
    for p in path.split("."):
        try:
            v = v[int(p)] if isinstance(v, list) else v[p]
        except (KeyError, IndexError, ValueError, TypeError):
            v = ""
            break
    if not isinstance(v, str):
        v = json.dumps(v)
    name = prefix + "_" + re.sub("[^A-Za-z0-9_]", "_", path)
    print(name + "=" + shlex.quote(v))
' "$@" || fail "not a JSON object: $2"
}

# json_valid TEXT: returns 0 when TEXT is one JSON object.
json_valid() {
    "$PY" -c 'import json, sys; sys.exit(0 if isinstance(json.loads(sys.argv[1]), dict) else 1)' "$1" 2>/dev/null
}

# dev_size DEV / dev_lbs DEV: size in bytes / logical block size, from the kernel.
dev_size() { blockdev --getsize64 "$1"; }
dev_lbs() { blockdev --getss "$1"; }

# require_offcopy: skip unless $OFFCOPY_BIN is an executable offload-copy.
require_offcopy() {
    if [[ -z ${OFFCOPY_BIN:-} ]]; then
        skip "OFFCOPY_BIN is not set (build offload-copy and run through CTest)"
    fi
    if [[ ! -x $OFFCOPY_BIN ]]; then
        skip "OFFCOPY_BIN=$OFFCOPY_BIN is not an executable"
    fi
}

# run_rc VAR CMD...: run CMD, keep going whatever it returns, store its exit status in VAR.
# Its stdout goes to $RUN_OUT (a file), stderr to $RUN_ERR; both are echoed.
RUN_OUT=/tmp/run.out
RUN_ERR=/tmp/run.err
run_rc() {
    local __var=$1 __rc=0
    shift
    echo "+ $*"
    "$@" >"$RUN_OUT" 2>"$RUN_ERR" || __rc=$?
    sed 's/^/  | /' "$RUN_OUT"
    sed 's/^/  ! /' "$RUN_ERR" >&2
    printf -v "$__var" '%s' "$__rc"
}

# offcopy ARGS...: run $OFFCOPY_BIN, echo the command and its output, fail unless it exits 0.
# The output is left in $RUN_OUT.
offcopy() {
    local rc
    run_rc rc "$OFFCOPY_BIN" "$@"
    [[ $rc == 0 ]] || fail "offload-copy $* exited $rc"
}

# sysfs_block DEV ATTR: /sys/block/NAME/ATTR for /dev/NAME (queue/logical_block_size, size ...).
sysfs_block() {
    cat "/sys/block/$(basename "$1")/$2"
}

# backend_bytes JSON NAME: backends.NAME.bytes of a copy report, 0 when the backend is absent.
backend_bytes() {
    json_get "$1" "backends.$2.bytes" 2>/dev/null || echo 0
}

# backends_total JSON: sum of backends.*.bytes of a copy report.
backends_total() {
    "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
print(sum(int(v.get("bytes", 0)) for v in (r.get("backends") or {}).values()))
' "$1"
}

# report_json: the stdout of the last run_rc/offcopy (a --json report; check_copy_report or
# json_vars check that it parses).
report_json() {
    cat "$RUN_OUT"
}

# check_copy_report JSON BYTES: bytes_copied == BYTES and the backends account for all of it.
check_copy_report() {
    local fields
    fields=$("$PY" -c '
import json, shlex, sys
r = json.loads(sys.argv[1])
total = sum(int(v.get("bytes", 0)) for v in (r.get("backends") or {}).values())
err = r.get("error")
print("_copied=%s _total=%s _err=%s _backends=%s _reason=%s" % (
    shlex.quote(str(r.get("bytes_copied"))), total,
    shlex.quote("" if err in (None, "") else json.dumps(err)),
    shlex.quote(json.dumps(r.get("backends"))),
    shlex.quote(json.dumps(r.get("fallback_reason")))))
' "$1") || fail "not a JSON report: $1"
    local _copied _total _err _backends _reason
    eval "$fields"
    expect_eq "$_copied" "$2" "bytes_copied"
    expect_eq "$_total" "$2" "sum of backends.*.bytes"
    [[ -z $_err ]] || fail "report has an error: $_err"
    echo "backends: $_backends; fallback_reason: $_reason"
}

# now: seconds since the epoch with nanoseconds, for timing.
now() { date +%s.%N; }
