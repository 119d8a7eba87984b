# tests/vm/lib.sh — helpers for guest rig scenarios. Source it first thing:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#
# Scenarios run inside the guest, chrooted into the host root, as root, with bash. Exit 0 = pass,
# 77 = skip, anything else = fail. Data is always checked by reading the device back with O_DIRECT
# (an offloaded copy bypasses the page cache; a buffered read can return stale data).
set -euo pipefail

# Every python of the scenarios runs with -S (no site module): they use the standard library only,
# and site's .pth hooks (setuptools' distutils shim and whatever else is installed) import ~80
# modules over 9p first: `python3 -c pass` takes 0.6-1.3 s in the guest, with -S 0.3-0.6 s.
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

VMDATA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/vmdata.py

# Data helpers: tests/vm/vmdata.py, one python process each, O_DIRECT I/O, no pipes (a
# `dd | sha256sum` pipeline moves ~2 MB/s under emulation).

# fill_random DEV OFFSET LEN SEED: write LEN bytes of the seeded pattern at OFFSET (O_DIRECT).
# OFFSET and LEN must be multiples of the logical block size. Every 512-byte block is distinct.
fill_random() {
    "$PY" -S "$VMDATA" fill "$1" "$2" "$3" "$4" || fail "fill_random $*"
}

# sum_random LEN SEED: sha256 of what fill_random LEN SEED writes.
sum_random() {
    "$PY" -S "$VMDATA" sum-pattern "$1" "$2"
}

# sum_direct DEV OFFSET LEN: sha256 of LEN bytes at OFFSET, read with O_DIRECT.
sum_direct() {
    "$PY" -S "$VMDATA" sum "$1" "$2" "$3"
}

# sum_zero LEN: sha256 of LEN zero bytes.
sum_zero() {
    "$PY" -S "$VMDATA" sum-zero "$1"
}

# expect_data CHECK...: several data checks in one process (O_DIRECT, memcmp), each CHECK one
# argument:  "same DEV1 OFF1 DEV2 OFF2 LEN WHAT..."  "zero DEV OFF LEN WHAT..."
#            "pattern DEV OFF LEN SEED WHAT..."  (the range holds fill_random ... SEED)
# Prints "ok: WHAT" per check, fails at the first mismatch saying where.
expect_data() {
    "$PY" -S "$VMDATA" check "$@" || fail "data check failed"
}

# json_get JSON PATH: value at a dotted PATH (keys or list indexes; "a.b.0.c"). Strings print raw,
# everything else as JSON; a missing key prints nothing and returns 1.
json_get() {
    "$PY" -S -c '
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
    "$PY" -S -c '
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
    "$PY" -S -c 'import json, sys; sys.exit(0 if isinstance(json.loads(sys.argv[1]), dict) else 1)' "$1" 2>/dev/null
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
    "$PY" -S -c '
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
    fields=$("$PY" -S -c '
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

# seconds_between T0 T1: T1 - T0 (from `now`), three decimals.
seconds_between() { "$PY" -S -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
# median_of N...: the median of the numbers (the upper one of an even count).
median_of() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# time_dd_against_offcopy SRC DST MODE REPS: REPS rounds of `dd bs=1M iflag=direct oflag=direct`
# then `offload-copy copy SRC DST --mode MODE`, alternating, dd first (the last writer is
# offload-copy: the caller checks its bytes). Prints each round's times; sets DD_MEDIAN and
# OC_MEDIAN (seconds) and RATIO_DD_OVER_OC = dd / offload-copy (> 1: offload-copy is faster).
time_dd_against_offcopy() {
    local src=$1 dst=$2 mode=$3 reps=$4 i t0 t1
    local -a dd_times=() oc_times=()
    for i in $(seq 1 "$reps"); do
        t0=$(now)
        dd if="$src" of="$dst" bs=1M iflag=direct oflag=direct status=none
        t1=$(now)
        dd_times+=("$(seconds_between "$t0" "$t1")")
        t0=$(now)
        "$OFFCOPY_BIN" copy "$src" "$dst" --mode "$mode" >/dev/null || fail "offload-copy exited $?"
        t1=$(now)
        oc_times+=("$(seconds_between "$t0" "$t1")")
        echo "rep $i: dd ${dd_times[-1]} s, offload-copy ${oc_times[-1]} s"
    done
    DD_MEDIAN=$(median_of "${dd_times[@]}")
    OC_MEDIAN=$(median_of "${oc_times[@]}")
    RATIO_DD_OVER_OC=$("$PY" -S -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" \
        "$DD_MEDIAN" "$OC_MEDIAN")
}
