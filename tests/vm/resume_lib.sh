# tests/vm/resume_lib.sh — helpers of the resume scenario (issue 8.8: kill -9 and power cuts in the
# middle of an offloaded copy with --journal). Source after lib.sh.

# journal_done_bytes ARGS...: bytes the journal of `offload-copy copy ARGS` records as done, as the
# library reads it (plan --journal reads it and changes nothing); 0 when it does not exist.
journal_done_bytes() {
    # Through a file: the plan lists every command (megabytes with 4 KiB commands), too long for argv.
    "$OFFCOPY_BIN" plan "$@" --json >/tmp/plan.json 2>/dev/null || { echo 0; return 0; }
    "$PY" -S -c 'import json, sys; print(json.load(open(sys.argv[1])).get("resumed_bytes", 0))' /tmp/plan.json
}

# journal_has_records FILE: the journal holds more than its header (at least one commit of done
# ranges). Layout (src/core/journal.cpp, docs/reliability.md): 16-byte signature, then the header
# record: u32 kind, u32 length (little-endian), LENGTH bytes of JSON, u32 CRC32C. Read with stat
# and od: a python start costs ~1 s in the emulated guest, too slow to poll with.
journal_has_records() {
    local size len
    size=$(stat -c %s "$1" 2>/dev/null) || return 1
    ((size >= 24)) || return 1
    len=$(od -An -tu4 -j20 -N4 "$1" 2>/dev/null | tr -d ' ') # (removed meanwhile: the copy ended)
    [[ -n $len ]] || return 1
    ((size > 16 + 8 + len + 4))
}

# wait_records TIMEOUT PID FILE...: waits until every FILE holds records; fails when PID (a copy
# in the background) ended first — the copy was too short for the journal's 1 s commit interval.
wait_records() {
    local timeout=$1 pid=$2 t0 f all
    shift 2
    t0=$(now)
    while :; do
        all=1
        for f in "$@"; do journal_has_records "$f" || all=0; done
        ((all)) && return 0
        kill -0 "$pid" 2>/dev/null || { cat /tmp/bg.*.out; fail "copy $pid ended before its journal recorded anything"; }
        awk -v a="$t0" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }' &&
            fail "no journal records after $timeout s"
        sleep 0.05
    done
}

# count_same DEV1 OFF1 DEV2 OFF2 LEN: "SAME_BYTES RUNS FIRST_DIFF" (4 KiB blocks, O_DIRECT).
count_same() {
    "$PY" -S "$VMDATA" count-same "$@"
}

# power_cut: QEMU is killed at once by the runner (vm-boots); this never returns.
power_cut() {
    echo "=== vm: power cut ==="
    sleep 600
    fail "the runner did not cut the power"
}

# elapsed T0: seconds since T0 (from `now`), 2 decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
